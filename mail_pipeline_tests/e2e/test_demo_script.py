"""The README's run command, ``scripts/demo.sh``, works as written — and Ctrl-C stops it all.

The script runs as a newcomer would run it (only ``MAIL_PIPELINE_HOME`` and the two ports set,
so that it does not touch the checkout's ``var/`` or the default ports): bootstrap, the demo
users and spool, Haraka, then ``dagster dev``. The test launches ``email_fetch_job`` through
GraphQL, checks the demo mail in the store, sends the group SIGINT as a terminal's Ctrl-C
would, and checks that nothing — Haraka included — is left listening. Its output holds the
project's own lines once each, and none of the noise a newcomer should not have to read:
flanker's parser tables, Dagster's warning about a dagster.yaml it ignores. Set up again, as a
restart does, the demo spools nothing twice.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import smtplib
import subprocess
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from mail_pipeline.intake.spool import haraka as haraka_server
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.e2e.conftest import (
    MARKER_VAR,
    REPO_ROOT,
    DagsterApi,
    ServicesError,
    _scrubbed_environ,
    _tail,
    processes_with_marker,
    wait_for,
)
from mail_pipeline_tests.fixtures.servers import free_port

pytestmark = [
    pytest.mark.dagster_e2e,
    pytest.mark.filterwarnings("ignore:Using variable_values:DeprecationWarning"),
]

#: What the demo spools (mail_pipeline/demo/*.eml), by user: team@ is bob's alias.
EXPECTED = {
    "alice": ["demo-invoice@example.net", "demo-welcome@example.net"],
    "bob": ["demo-invoice@example.net", "demo-latin1@example.net", "demo-newsletter@example.net"],
}


def listening(port: int) -> bool:
    """True when some socket on this machine LISTENs on TCP ``port`` (IPv4 or IPv6)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table, encoding="ascii") as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return True
    return False


def _stored(db: Path) -> dict[str, list[str]]:
    store = MailStore(f"sqlite:///{db}")
    try:
        return {
            name: sorted(m.message_id for m in store.messages.summaries(store.users.get(name).id))
            for name in EXPECTED
        }
    finally:
        store.dispose()


#: Lines that must not be in the demo's output, and why.
NOISE = {
    "Generating LALR": "flanker's parse tables (ply)",
    "is unreachable": "flanker's parse tables (ply)",
    "parsetab": "flanker's parse tables (ply)",
    "in the current folder": "Dagster started beside a dagster.yaml it ignores",
    "Traceback": "a crash",
}


def check_clean_output(log: str, home: Path) -> None:
    """The demo's own set-up lines are there once each, and none of :data:`NOISE` is."""
    lines = log.splitlines()
    for own in (
        f"created key file {home / 'secret.key'}",
        "schema at revision",
        "demo users added: alice, bob",
        f"spooled 5 demo messages into {home / 'spool'}",
        "Haraka listening on 127.0.0.1:",
        "[demo] Dagster UI: http://127.0.0.1:",
    ):
        found = [line for line in lines if line.startswith(own)]
        assert len(found) == 1, (own, found)
    noise = {why: line for line in lines for text, why in NOISE.items() if text in line}
    assert noise == {}


def test_demo_script_runs_the_pipeline_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dagster_port, smtp_port = free_port(), free_port()
    token = secrets.token_hex(8)
    env = {
        **_scrubbed_environ(),
        "MAIL_PIPELINE_HOME": str(home),
        "DAGSTER_PORT": str(dagster_port),
        "MAIL_PIPELINE_SMTP_PORT": str(smtp_port),
        MARKER_VAR: token,
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "demo.log"
    with open(log_path, "wb") as log:
        demo = subprocess.Popen(
            [str(REPO_ROOT / "scripts" / "demo.sh")],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def context() -> str:
        state = "running" if demo.poll() is None else f"exited {demo.returncode}"
        return f"--- demo.sh ({state}), last lines of {log_path}:\n{_tail(log_path, 80)}"

    def up(check: bool) -> bool:
        if demo.poll() is not None:
            raise ServicesError(f"scripts/demo.sh exited early\n{context()}")
        return check

    api = DagsterApi(dagster_port)
    started = time.monotonic()
    try:
        wait_for(
            lambda: up(api.server_info_ok()), 300, "the demo's Dagster webserver", context=context
        )
        wait_for(
            lambda: up(api.location_problem() is None),
            180,
            "the code location of the demo",
            context=context,
        )
        wait_for(
            lambda: up(api.daemon_problem() is None), 180, "the demo's daemon", context=context
        )
        print(f"demo up after {time.monotonic() - started:.1f} s")
        assert listening(smtp_port), f"Haraka is not listening on {smtp_port}\n{context()}"

        # The README: "send mail to alice@demo.test". Spooled now, ingested by the fetch job
        # or by the spool sensor, whichever comes first.
        note = EmailMessage()
        note["From"], note["To"], note["Subject"] = "me@remote.example", "alice@demo.test", "hi"
        note["Message-ID"] = "<readme-note@remote.example>"
        note.set_content("sent to the demo's Haraka")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as smtp:
            assert smtp.send_message(note) == {}

        run_id = api.launch_run("email_fetch_job")
        wait_for(
            lambda: up(api.run_status(run_id) in {"SUCCESS", "FAILURE", "CANCELED"}),
            180,
            f"email_fetch_job run {run_id}",
            context=context,
        )
        assert api.run_status(run_id) == "SUCCESS", context()

        expected = {**EXPECTED, "alice": sorted([*EXPECTED["alice"], "readme-note@remote.example"])}
        db = home / "mail_pipeline.db"
        # The spool sensor's own run may hold some files for a moment after the fetch run.
        wait_for(
            lambda: _stored(db) == expected,
            60,
            "the demo mail in the store",
            interval=1.0,
            context=lambda: f"stored: {_stored(db)}\n{context()}",
        )
        unmatched = [p.name for p in (home / "spool" / "unmatched").rglob("*.eml")]
        assert len(unmatched) == 1, unmatched  # nobody@demo.test: kept, not dropped
        print(f"demo checked after {time.monotonic() - started:.1f} s")

        # Ctrl-C: SIGINT to the whole foreground group, as a terminal sends it.
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail(f"demo.sh did not stop within 90 s of SIGINT\n{context()}")
        print(f"demo stopped {time.monotonic() - started:.1f} s (exit {demo.returncode})")
        wait_for(
            lambda: not listening(smtp_port),
            10,
            "Haraka to stop listening",
            interval=0.2,
            context=context,
        )
        wait_for(
            lambda: not listening(dagster_port),
            10,
            "the webserver to stop listening",
            interval=0.2,
            context=context,
        )
        left = wait_for(
            lambda: processes_with_marker(token) == [] or None,
            30,
            "every process of the demo to exit",
            interval=0.5,
            context=lambda: f"left: {processes_with_marker(token)}\n{context()}",
        )
        assert left
        check_clean_output(log_path.read_text(errors="replace"), home)

        # A restart sets the demo up again first: nothing is spooled twice.
        again = subprocess.run(
            [str(REPO_ROOT / ".venv" / "bin" / "mail-pipeline"), "demo"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert again.returncode == 0 and again.stderr == "", again
        assert "demo users added: none (already there)" in again.stdout
        assert "not spooled again" in again.stdout
        assert len(list((home / "spool" / "unmatched").rglob("*.eml"))) == 1
        assert list((home / "spool" / "inbox").glob("*.eml")) == []
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(demo.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            demo.wait(timeout=10)
        haraka_server.stop(home / "haraka-runtime")
        for pid in processes_with_marker(token):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
