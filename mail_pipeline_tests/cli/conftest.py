"""CLI tests run ``main()`` in-process against a store URL given through the environment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mail_pipeline.cli import main


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

    def run(*args: str, stdin: str | None = None) -> Result:
        if stdin is not None:
            import io

            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
