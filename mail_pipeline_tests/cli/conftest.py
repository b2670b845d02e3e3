"""CLI tests run ``main()`` in-process against a store URL given through the environment, or
the installed ``mail-pipeline`` in a subprocess (:func:`run_installed`) when what matters is
a real pipe, the current folder or the modules a fresh interpreter imports."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from mail_pipeline.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture
def cli(
    store_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Run:
    """Run ``mail-pipeline ARGS`` against a fresh store; returns code, stdout, stderr."""
    monkeypatch.setenv("MAIL_PIPELINE_DATABASE_URL", store_url)
    monkeypatch.setenv("MAIL_PIPELINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MAIL_PIPELINE_SECRET_KEY", "a passphrase for the cli tests")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("FORCE_COLOR", raising=False)

    def run(*args: str, stdin: str | None = None) -> Result:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without MAIL_PIPELINE_*, DAGSTER_*, COLUMNS and the colour
    switches, plus ``extra``."""
    drop = ("MAIL_PIPELINE_", "DAGSTER_")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(drop) and k not in ("COLUMNS", "FORCE_COLOR", "NO_COLOR")
    }
    env.update(extra)
    return env


def run_installed(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, python: str = ""
) -> Result:
    """Run ``mail-pipeline ARGS`` in a fresh interpreter (stdout and stderr are pipes), or the
    Python code ``python`` when given."""
    command = (
        [sys.executable, "-c", python, *args]
        if python
        else [
            sys.executable,
            "-c",
            "import sys; from mail_pipeline.cli import main; sys.exit(main())",
            *args,
        ]
    )
    done = subprocess.run(
        command,
        cwd=cwd,
        env=dict(env) if env is not None else clean_environ(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)
