"""kill -9 of an IMAP fetch between batches: the next run (``mail-pipeline imap fetch``) stores
every message exactly once (the cursor is committed with the messages it covers, never ahead
of them).

The killed child is ``crash_runner`` (in this package): it builds the fetcher with a checkpoint
that, after the N-th committed batch, writes a marker file and sleeps, so the kill is
deterministic.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.fixtures.dovecot import DovecotServer

pytestmark = pytest.mark.dovecot

SECRET = "a passphrase for the imap crash tests"
ENTRY = "from mail_pipeline.cli import main; raise SystemExit(main())"
ROOT = Path(__file__).resolve().parents[3]  # where ``python -m mail_pipeline_tests...`` works


def run_fetch(env: dict[str, str], username: str, *extra: str) -> subprocess.Popen[bytes]:
    """``mail-pipeline imap fetch USER EXTRA...`` in a child process."""
    return subprocess.Popen(
        [sys.executable, "-c", ENTRY, "imap", "fetch", username, *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run_paused_fetch(
    env: dict[str, str], store_url: str, attachments: Path, username: str, *extra: str
) -> subprocess.Popen[bytes]:
    """The crash runner fetching ``username`` in a child process (it stops as ``extra`` say)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mail_pipeline_tests.intake.imap.crash_runner",
            store_url,
            str(attachments),
            username,
            *extra,
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_kill_9_mid_run_then_the_next_run_stores_every_message_once(
    dovecot: DovecotServer, store_url: str, tmp_path: Path
) -> None:
    store = MailStore(store_url)
    user = dovecot.new_user()
    record = store.users.add(user.username, f"{user.username}@example.org")
    EmailConfigManager(store, SECRET).update_fetch_config(
        record.id,
        {
            "imap_config": {
                "imap_host": dovecot.host,
                "imap_ssl_port": dovecot.imaps_port,
                "security": "ssl",
                "username": user.username,
                "password": user.password,
                "ca_file": str(dovecot.ca_cert_path),
            },
            "filter_config": {"folders": ["INBOX"], "max_age_days": 7},
        },
    )
    ids = [f"crash-{n}-{uuid.uuid4().hex}@example.net" for n in range(50)]
    now = dt.datetime.now(dt.UTC)
    with dovecot.client(user.username) as client:
        for n, mid in enumerate(ids):
            client.append(
                "INBOX",
                (
                    f"From: bob@example.net\r\nTo: a@example.org\r\n"
                    f"Subject: crash {n}\r\nMessage-ID: <{mid}>\r\n\r\n"
                    f"body {n}\r\n"
                ).encode(),
                msg_time=now,
            )
    marker = tmp_path / "paused"
    env = {
        **os.environ,
        "MAIL_PIPELINE_DATABASE_URL": store_url,
        "MAIL_PIPELINE_HOME": str(tmp_path / "home"),
        "MAIL_PIPELINE_SECRET_KEY": SECRET,
    }
    attachments = tmp_path / "home" / "attachments"
    attachments.mkdir(parents=True)
    try:
        child = run_paused_fetch(
            env,
            store_url,
            attachments,
            user.username,
            "--batch-size",
            "5",
            "--pause-after-batch",
            "3",
            "--marker",
            str(marker),
        )
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child never reached batch 3"
            time.sleep(0.05)
        assert store.messages.count(record.id) == 15
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL
        position = store.messages.sync_position(record.id, "INBOX")
        uids = dovecot.uids(user.username)
        assert position is not None and position.last_uid == uids[14]
        stored = {m.message_id for m in store.messages.summaries(record.id)}
        assert stored == set(ids[:15])  # the cursor covers exactly what was committed

        again = run_fetch(env, user.username, "--batch-size", "5")
        out, err = again.communicate(timeout=120)
        assert again.returncode == 0, err.decode()
        assert b"fetched 35, saved 35, duplicates 0" in out
        summaries = store.messages.summaries(record.id)
        assert sorted(m.message_id for m in summaries) == sorted(ids)  # each exactly once
        assert all("\\Seen" not in f for f in dovecot.flags(user.username).values())
    finally:
        store.dispose()
