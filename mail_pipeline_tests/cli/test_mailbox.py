"""``mail-pipeline mailbox``: show, list and resume a mailbox's state."""

from __future__ import annotations

from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.cli.conftest import Run


def test_mailbox_show_list_resume(cli: Run, store_url: str) -> None:
    store = MailStore(store_url)
    user = store.users.add("yan", "yan@example.org")
    assert "never fetched" in cli("mailbox", "show", "yan").out
    for _ in range(3):
        store.mailboxes.record_failure(
            user.id, "auth", "login refused", pause_after_auth_failures=3
        )
    shown = cli("mailbox", "show", "yan")
    assert "PAUSED" in shown.out and "mail-pipeline imap resume yan" in shown.out
    assert "yan" in cli("mailbox", "list").out
    resumed = cli("mailbox", "resume", "yan")
    assert resumed.code == 0 and "resumed" in resumed.out
    state = store.mailboxes.get(user.id)
    assert state is not None and not state.paused and state.consecutive_failures == 0
    missing = cli("mailbox", "resume", "nobody")
    assert missing.code == 2 and len(missing.err.strip().splitlines()) == 1
    store.dispose()
