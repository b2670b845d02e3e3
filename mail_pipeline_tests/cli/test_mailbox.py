"""``mail-pipeline mailbox``: show, list and resume a mailbox's state."""

from __future__ import annotations

import json
from datetime import datetime

from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.cli.conftest import Run


def test_mailbox_show_list_resume(cli: Run, store_url: str) -> None:
    assert cli("mailbox", "list").out == "no mailboxes (none fetched yet)\n"
    store = MailStore(store_url)
    user = store.users.add("yan", "yan@example.org")
    assert "never fetched" in cli("mailbox", "show", "yan").out
    assert json.loads(cli("mailbox", "show", "yan", "--json").out) == {
        "user": "yan",
        "mailbox": None,
    }
    for _ in range(3):
        store.mailboxes.record_failure(
            user.id, "auth", "login refused", pause_after_auth_failures=3
        )
    shown = cli("mailbox", "show", "yan")
    assert "PAUSED" in shown.out and "mail-pipeline imap resume yan" in shown.out
    listed = cli("mailbox", "list")
    assert "yan" in listed.out and "PAUSED since" in listed.out and " UTC" in listed.out
    assert "yan: auth: login refused" in listed.out  # the last error, whole
    (box,) = json.loads(cli("mailbox", "list", "--json").out)
    assert box["user"] == "yan" and box["state"] == "paused"
    assert datetime.fromisoformat(box["paused_at"]).utcoffset() is not None
    shown = json.loads(cli("mailbox", "show", "yan", "--json").out)
    assert shown["mailbox"]["consecutive_auth_failures"] == 3
    resumed = cli("mailbox", "resume", "yan")
    assert resumed.code == 0 and "resumed" in resumed.out
    state = store.mailboxes.get(user.id)
    assert state is not None and not state.paused and state.consecutive_failures == 0
    missing = cli("mailbox", "resume", "nobody")
    assert missing.code == 2 and len(missing.err.strip().splitlines()) == 1
    store.dispose()
