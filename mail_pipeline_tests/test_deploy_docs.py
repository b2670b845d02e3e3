"""deploy/README.md cannot rot: its tested walkthrough runs against the session PostgreSQL.

The ```bash blocks between ``<!-- tested: begin -->`` and ``<!-- tested: end -->`` are joined
into one script and run with bash from the repository root, with an env file made from
``deploy/env.example`` pointing at the test server. Then, with exactly the variables of that
file and ``PATH``, an IMAP account on the test Dovecot is set up with the CLI and one
``email_fetch_job`` is run as the doc says: it must store the IMAP message and a spool file's
(the key the CLI sealed the password with is the one the run opens it with). The environment
table must name every ``MAIL_PIPELINE_*`` / ``DAGSTER_PG_*`` variable the code, scripts and
instance file read.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from mail_pipeline.intake.spool.writer import spool_message
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.fixtures.postgres import PostgresServer
from mail_pipeline_tests.storage.store.test_store import HEAD

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "deploy" / "README.md"
VARIABLE = re.compile(r"\b(?:MAIL_PIPELINE|DAGSTER_PG)_[A-Z0-9_]+\b")
#: The doc's command for one fetch by hand (deploy/README.md, after step 7).
FETCH_COMMAND = "dagster job execute -m mail_pipeline.defs.definitions -j email_fetch_job"


def bash_walkthrough(markdown: str) -> str:
    """Return the ```bash blocks inside the tested markers, joined (fails if there are none)."""
    sections = re.findall(r"<!-- tested: begin -->(.*?)<!-- tested: end -->", markdown, re.S)
    blocks = [b for s in sections for b in re.findall(r"```bash\n(.*?)```", s, re.S)]
    assert blocks, "deploy/README.md has no tested bash blocks"
    return "\n".join(blocks)


def _env_file(tmp: Path, server: PostgresServer) -> Path:
    """Return deploy/env.example with its paths and servers replaced by the test's."""
    key = tmp / "etc" / "secret.key"  # made by the walkthrough's `mail-pipeline secret-key`
    overrides = {
        "MAIL_PIPELINE_HOME": str(tmp / "home"),
        "MAIL_PIPELINE_DATABASE_URL": f"postgresql://mp_docs:change-me@127.0.0.1:{server.port}/mail_pipeline",
        "MAIL_PIPELINE_ATTACHMENT_ROOT": str(tmp / "attachments"),
        "MAIL_PIPELINE_SPOOL_DIR": str(tmp / "spool"),
        "MAIL_PIPELINE_SECRET_KEY_FILE": str(key),
        "DAGSTER_HOME": str(tmp / "dagster_home"),
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(server.port),
        "DAGSTER_PG_DB": "dagster_docs",
        "DAGSTER_PG_USERNAME": "mp_docs",
    }
    lines = []
    seen = set()
    for line in (ROOT / "deploy" / "env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        if "=" in line and not line.startswith("#") and name in overrides:
            lines.append(f"{name}='{overrides[name]}'")
            seen.add(name)
        else:
            lines.append(line)
    assert seen == set(overrides), f"env.example lacks {set(overrides) - seen}"
    path = tmp / "env"
    path.write_text("\n".join(lines) + "\n")
    return path


def _variables(env_file: Path) -> dict[str, str]:
    """Return the ``NAME=value`` assignments of ``env_file`` (shell quoting undone)."""
    variables = {}
    for line in env_file.read_text().splitlines():
        if re.match(r"^[A-Z0-9_]+=", line):
            name, value = line.split("=", 1)
            words = shlex.split(value, comments=True)
            variables[name] = words[0] if words else ""
    return variables


def _run(
    args: list[str], env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, (
        f"{' '.join(args)}: exit {result.returncode}\nstdout:\n{result.stdout}\n"
        f"stderr:\n{result.stderr}"
    )
    return result


def _message(tag: str) -> bytes:
    return (
        f"From: sender@remote.example\r\nTo: carol@example.org\r\nSubject: {tag}\r\n"
        f"Message-ID: <{tag}@deploy-docs.test>\r\n\r\nbody of {tag}\r\n"
    ).encode()


@pytest.mark.dovecot
def test_the_move_to_postgresql_walkthrough_runs_and_a_fetch_stores_both_paths(
    postgres_server: PostgresServer, dovecot: DovecotServer, tmp_path: Path
) -> None:
    admin = create_engine(postgres_server.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # the walkthrough creates these: start clean
        for db in ("mail_pipeline", "dagster_docs"):
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}"'))
        conn.execute(text("DROP ROLE IF EXISTS mp_docs"))
    env_file = _env_file(tmp_path, postgres_server)
    script = "set -euo pipefail\n" + bash_walkthrough(README.read_text())
    env = {
        k: v for k, v in os.environ.items() if not VARIABLE.match(k) and k not in ("DAGSTER_HOME",)
    }
    env["ENV_FILE"] = str(env_file)
    result = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "HEALTHY" in result.stdout
    # Step 2 made the key file env.example names, readable by its owner only.
    key_file = tmp_path / "etc" / "secret.key"
    assert f"created key file {key_file}" in result.stdout
    assert key_file.stat().st_mode & 0o777 == 0o600
    # The instance file validated and Dagster's tables are in PostgreSQL ...
    assert (tmp_path / "dagster_home" / "dagster.yaml").exists()
    dagster_db = create_engine(postgres_server.url("dagster_docs"))
    try:
        assert {"runs", "event_logs"} <= set(inspect(dagster_db).get_table_names())
    finally:
        dagster_db.dispose()
    # ... and the mail store is migrated to the newest schema, owned by the new role.
    store = MailStore(f"postgresql://mp_docs@127.0.0.1:{postgres_server.port}/mail_pipeline")
    try:
        assert store.schema_revision() == HEAD
        assert {"email_tasks", "email_task_audit", "mailbox_state"} <= set(store.table_names())
    finally:
        store.dispose()
    admin.dispose()

    # --- One email_fetch_job with exactly env.example's variables (and PATH): an IMAP account
    # set up by the CLI, and a spool file, both stored by the run.
    variables = _variables(env_file)
    assert set(variables) == set(
        re.findall(r"^([A-Z0-9_]+)=", (ROOT / "deploy" / "env.example").read_text(), re.M)
    )
    env = {**variables, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    login = dovecot.new_user()
    dovecot.append(login.username, _message("over-imap"), internaldate=dt.datetime.now(dt.UTC))
    _run(["mail-pipeline", "users", "add", "carol", "carol@example.org"], env)
    _run(
        [
            "mail-pipeline",
            "imap",
            "set",
            "carol",
            "--host",
            dovecot.host,
            "--port",
            str(dovecot.imaps_port),
            "--login",
            login.username,
            "--ca-file",
            str(dovecot.ca_cert_path),
            "--password-stdin",
        ],
        env,
        stdin=login.password + "\n",
    )
    spool_message(
        variables["MAIL_PIPELINE_SPOOL_DIR"],
        _message("over-smtp"),
        ["carol@example.org"],
        mail_from="sender@remote.example",
    )
    assert FETCH_COMMAND in README.read_text()
    run = _run(shlex.split(FETCH_COMMAND), env)
    assert "RUN_SUCCESS" in run.stdout + run.stderr
    store = MailStore(variables["MAIL_PIPELINE_DATABASE_URL"])
    try:
        carol = store.users.get("carol")
        assert sorted(m.message_id for m in store.messages.summaries(carol.id)) == [
            "over-imap@deploy-docs.test",
            "over-smtp@deploy-docs.test",
        ]
    finally:
        store.dispose()


def test_the_environment_table_names_every_variable() -> None:
    readme = README.read_text()
    table = {m.group(1) for m in re.finditer(r"^\| `([A-Z0-9_]+)` \|", readme, re.M)}
    used: set[str] = set()
    for folder in ("mail_pipeline", "scripts", "deploy"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".sh", ".yaml", ".example", ".service"):
                used |= set(VARIABLE.findall(path.read_text(errors="replace")))
    used |= set(VARIABLE.findall((ROOT / "dagster.yaml").read_text()))
    assert used, "found no variables: the scan is broken"
    assert used - table == set(), f"not in deploy/README.md's table: {sorted(used - table)}"
    example = (ROOT / "deploy" / "env.example").read_text()
    for name in re.findall(r"^([A-Z0-9_]+)=", example, re.M):
        assert name in table, f"env.example sets {name}, which the table does not explain"


def test_systemd_units_name_what_the_venv_installs() -> None:
    units = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
    assert [u.name for u in units] == [
        "dagster-daemon.service",
        "dagster-webserver.service",
        "haraka.service",
    ]
    venv_bin = ROOT / ".venv" / "bin"
    for unit in units:
        body = unit.read_text()
        assert "EnvironmentFile=/etc/mail-pipeline/env" in body
        for section in ("[Unit]", "[Service]", "[Install]"):
            assert section in body, f"{unit.name} lacks {section}"
        for command in re.findall(
            r"^Exec(?:Start|Stop)=/opt/mail-pipeline/\.venv/bin/(\S+)", body, re.M
        ):
            assert (venv_bin / command).exists(), f"{unit.name}: no .venv/bin/{command}"
