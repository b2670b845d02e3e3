"""Post-actions (mark \\Seen, MOVE, DELETE) against a real Dovecot: only after the commit, only
on the stored UIDs, and a refusal is a warning (seed fault: delete/expunge before the save).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.exc import OperationalError

from mail_pipeline.intake.imap import post_actions
from mail_pipeline.intake.imap.fetcher import MailboxFetcher
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.intake.imap.mailboxes import CommandLog, Mailbox, assert_ok, message

pytestmark = pytest.mark.dovecot


@pytest.mark.parametrize("action", ["mark_seen", "move", "delete"])
def test_post_actions_run_only_after_the_commit(
    fetcher: MailboxFetcher,
    mailbox: Callable[..., Mailbox],
    store: MailStore,
    dovecot: DovecotServer,
    monkeypatch: pytest.MonkeyPatch,
    action: str,
) -> None:
    box = mailbox(post_action=action, move_to="Archive" if action == "move" else None)
    dovecot.create_folder(box.name, "Archive")
    uids = [box.append(message(n)) for n in range(5)]

    def down(*_args: object, **_kwargs: object) -> list[int | None]:
        raise OperationalError("INSERT", {}, Exception("database is down"))

    with monkeypatch.context() as patch:
        patch.setattr(store.messages, "insert_batch", down)
        with pytest.raises(OperationalError):
            fetcher.fetch_user(box.id)
    # nothing stored, so nothing touched on the server
    assert store.messages.count(box.id) == 0
    assert store.messages.sync_position(box.id, "INBOX") is None
    assert dovecot.uids(box.name) == uids
    assert all("\\Seen" not in f and "\\Deleted" not in f for f in dovecot.flags(box.name).values())
    assert dovecot.uids(box.name, "Archive") == []

    result = fetcher.fetch_user(box.id)

    assert_ok(result)
    assert result.warnings == ()
    assert store.messages.count(box.id) == 5
    if action == "mark_seen":
        flags = dovecot.flags(box.name)
        assert sorted(flags) == uids and all("\\Seen" in f for f in flags.values())
    elif action == "move":
        assert dovecot.uids(box.name) == [] and len(dovecot.uids(box.name, "Archive")) == 5
        assert all("\\Seen" not in f for f in dovecot.flags(box.name, "Archive").values())
    else:
        assert dovecot.uids(box.name) == []


def test_move_without_the_move_capability_copies_and_expunges_only_those(
    fetcher: MailboxFetcher,
    mailbox: Callable[..., Mailbox],
    store: MailStore,
    dovecot: DovecotServer,
    monkeypatch: pytest.MonkeyPatch,
    command_log: CommandLog,
) -> None:
    box = mailbox(post_action="move", move_to="Archive")
    dovecot.create_folder(box.name, "Archive")
    for n in range(4):
        box.append(message(n))
    monkeypatch.setattr(post_actions, "has_capability", lambda _client, name: name != "MOVE")
    assert_ok(fetcher.fetch_user(box.id))
    assert "UID MOVE" not in command_log.names()
    assert {"UID COPY", "UID STORE", "UID EXPUNGE"} <= set(command_log.names())
    assert dovecot.uids(box.name) == [] and len(dovecot.uids(box.name, "Archive")) == 4


def test_a_refused_post_action_is_a_warning_and_keeps_the_messages(
    fetcher: MailboxFetcher,
    mailbox: Callable[..., Mailbox],
    store: MailStore,
    dovecot: DovecotServer,
) -> None:
    box = mailbox(post_action="move", move_to="NoSuchFolder")
    box.append(message(1))
    result = fetcher.fetch_user(box.id)
    assert_ok(result)
    assert store.messages.count(box.id) == 1
    assert len(result.warnings) == 1 and "move" in result.warnings[0]
    assert len(dovecot.uids(box.name)) == 1
