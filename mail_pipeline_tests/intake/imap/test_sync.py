"""A folder's cursor against a real Dovecot, with the store on SQLite and PostgreSQL: the
first-sync window and filters, every UID above the cursor later, UIDVALIDITY changes, one
EXAMINE and one SEARCH when nothing is new, and batches planned by count, bytes and size limit.

Seed faults tested here: sequence numbers + ``RFC822`` marking mail read
(``test_first_sync_window_uids_and_mail_stays_unseen``) and re-downloading a window every run
(``test_nothing_new_is_one_examine_one_search_and_no_fetch``,
``test_incremental_takes_every_uid_above_the_cursor``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.fetcher import MailboxFetcher
from mail_pipeline.intake.imap.sync import Batch, plan_batches
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import EmailSource, MailStore, TaskStatus
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.intake.imap.mailboxes import (
    LIMIT,
    NOW,
    OLD,
    SECRET,
    CommandLog,
    Mailbox,
    assert_ok,
    big_message,
    message,
    stored_subjects,
)

pytestmark = pytest.mark.dovecot


def test_plan_batches_bounds_uids_and_bytes_and_sets_aside_the_oversized() -> None:
    sizes = {1: 40, 2: 40, 3: 500, 4: 40, 5: 40, 6: 40, 8: 90}  # 7: gone before its size
    batches = plan_batches(
        [1, 2, 3, 4, 5, 6, 7, 8], sizes, limit=100, batch_size=3, batch_max_bytes=100
    )
    assert batches == [
        Batch((1, 2, 3), (1, 2), ((3, 500),)),  # 3 UIDs; the oversized one is not fetched
        Batch((4, 5), (4, 5), ()),  # 40 + 40 + 40 would pass 100 bytes
        Batch((6, 7), (6,), ()),  # 7 is covered (the cursor passes it) but not fetched
        Batch((8,), (8,), ()),
    ]
    # a message bigger than the byte bound (but within the limit) is a batch of its own
    assert plan_batches([1, 2], {1: 90, 2: 90}, limit=100, batch_size=10, batch_max_bytes=50) == [
        Batch((1,), (1,), ()),
        Batch((2,), (2,), ()),
    ]
    assert plan_batches([], {}, limit=1, batch_size=1, batch_max_bytes=1) == []


def test_first_sync_window_uids_and_mail_stays_unseen(
    fetcher: MailboxFetcher,
    mailbox: Callable[..., Mailbox],
    store: MailStore,
    dovecot: DovecotServer,
) -> None:
    box = mailbox(max_age_days=7)
    for n in range(3):
        box.append(message(n, subject=f"old {n}"), when=OLD)
    uids = [box.append(message(n, subject=f"new {n}")) for n in range(4)]

    result = fetcher.fetch_user(box.name)

    assert_ok(result)
    assert stored_subjects(store, box.id) == [f"new {n}" for n in range(4)]
    assert (result.counters.fetched, result.counters.saved) == (4, 4)
    (folder,) = result.folders
    uidvalidity = dovecot.uidvalidity(box.name)
    assert (folder.folder, folder.uidvalidity, folder.last_uid, folder.reset) == (
        "INBOX",
        uidvalidity,
        uids[-1],
        False,
    )
    position = store.messages.sync_position(box.id, "INBOX")
    assert position is not None and position.last_uid == uids[-1]
    assert all("\\Seen" not in flags for flags in dovecot.flags(box.name).values())
    summaries = store.messages.summaries(box.id)
    assert {m.origin for m in summaries} == {f"imap:INBOX:{uidvalidity}:{u}" for u in uids}
    assert all(m.source == EmailSource.IMAP.value for m in summaries)
    received = {
        abs(
            (
                m.received_at.replace(tzinfo=dt.UTC)
                if m.received_at.tzinfo is None
                else m.received_at
            )
            - NOW
        )
        for m in summaries
    }
    assert max(received) < dt.timedelta(seconds=2)  # INTERNALDATE, not the Date header
    config = EmailConfigManager(store, SECRET).get_email_config(box.id)
    assert config["filter_config"]["last_email_fetch_time"]


def test_incremental_takes_every_uid_above_the_cursor(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore
) -> None:
    box = mailbox(max_age_days=7)
    box.append(message(0, subject="skipped old"), when=OLD)
    box.append(message(1, subject="first"))
    assert_ok(fetcher.fetch_user(box.id))
    # Later syncs have no date window: an old INTERNALDATE arriving now is still new mail.
    for n in range(2, 9):
        box.append(message(n, subject=f"later {n}"), when=OLD)
    result = fetcher.fetch_user(box.id)
    assert_ok(result)
    assert result.counters.fetched == 7 and result.counters.saved == 7
    assert "skipped old" not in stored_subjects(store, box.id)
    assert len(stored_subjects(store, box.id)) == 8


def test_nothing_new_is_one_examine_one_search_and_no_fetch(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], command_log: CommandLog
) -> None:
    box = mailbox()
    for n in range(4):
        box.append(message(n))
    assert_ok(fetcher.fetch_user(box.id))
    assert "UID FETCH" in command_log.names()
    command_log.commands.clear()

    result = fetcher.fetch_user(box.id)

    assert_ok(result)
    assert result.counters.fetched == 0
    assert command_log.names() == ["EXAMINE", "UID SEARCH"]
    assert not any("RFC822" in c or c == "FETCH" for c in command_log.commands)


def test_first_sync_filters_unread_from_and_subject(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore
) -> None:
    box = mailbox(max_age_days=None, filters=("unread", "from:boss@", "subject:invoice"))
    box.append(message(1, subject="invoice 1", sender="boss@example.org"))
    box.append(message(2, subject="invoice 2", sender="boss@example.org"), flags=("\\Seen",))
    box.append(message(3, subject="invoice 3", sender="other@example.org"))
    box.append(message(4, subject="lunch", sender="boss@example.org"))
    assert_ok(fetcher.fetch_user(box.id))
    assert stored_subjects(store, box.id) == ["invoice 1"]
    # after the first sync, every new UID is taken whatever the filters say
    box.append(message(5, subject="lunch again", sender="other@example.org"))
    assert_ok(fetcher.fetch_user(box.id))
    assert stored_subjects(store, box.id) == ["invoice 1", "lunch again"]


def test_uidvalidity_change_restarts_the_folder_without_duplicates(
    fetcher: MailboxFetcher,
    mailbox: Callable[..., Mailbox],
    store: MailStore,
    dovecot: DovecotServer,
) -> None:
    box = mailbox(folders=("Work",))
    dovecot.create_folder(box.name, "Work")
    raws = [message(n) for n in range(5)]
    for raw in raws:
        box.append(raw, folder="Work")
    assert_ok(fetcher.fetch_user(box.id))
    before = dovecot.uidvalidity(box.name, "Work")

    dovecot.delete_folder(box.name, "Work")
    dovecot.create_folder(box.name, "Work")
    for raw in [*raws, message(5, subject="fresh")]:
        box.append(raw, folder="Work")
    after = dovecot.uidvalidity(box.name, "Work")
    assert after != before

    result = fetcher.fetch_user(box.id)

    assert_ok(result)
    (folder,) = result.folders
    assert folder.reset and folder.uidvalidity == after
    assert (folder.fetched, folder.saved, folder.duplicates) == (6, 1, 5)
    assert store.messages.count(box.id) == 6
    position = store.messages.sync_position(box.id, "Work")
    assert position is not None and position.uidvalidity == after


def test_batches_are_bounded_by_bytes(
    store: MailStore,
    configs: EmailConfigManager,
    attachment_root: Path,
    mailbox: Callable[..., Mailbox],
    body_fetches: list[list[int]],
) -> None:
    box = mailbox()
    uids = [box.append(big_message(n, size=30 * 1024)) for n in range(5)]
    save = EmailSaveService(store, AttachmentStorage(attachment_root, fsync=False))
    fetcher = MailboxFetcher(
        store,
        save,
        configs,
        batch_size=100,
        batch_max_bytes=70 * 1024,
        connect_timeout=5,
        read_timeout=10,
    )
    result = fetcher.fetch_user(box.id)
    assert_ok(result)
    assert result.counters.saved == 5
    assert body_fetches == [uids[0:2], uids[2:4], uids[4:]]


@pytest.mark.parametrize("action", ["none", "delete"])
def test_a_message_over_the_limit_is_recorded_too_large_and_left_on_the_server(
    fetcher: MailboxFetcher,
    mailbox: Callable[..., Mailbox],
    store: MailStore,
    dovecot: DovecotServer,
    body_fetches: list[list[int]],
    action: str,
) -> None:
    box = mailbox(max_message_bytes=LIMIT, post_action=action)
    small = [box.append(message(n)) for n in range(3)]
    big_raw = big_message(9)
    big = box.append(big_raw)
    small += [box.append(message(n)) for n in range(3, 5)]
    task = store.tasks.create(EmailSource.IMAP, status=TaskStatus.RUNNING)

    result = fetcher.fetch_user(box.id, task_id=task.task_id)

    assert_ok(result)
    assert stored_subjects(store, box.id) == [f"message {n}" for n in range(5)]
    assert (result.counters.fetched, result.counters.saved, result.counters.failed) == (5, 5, 1)
    assert result.too_large == 1 and result.folders[0].too_large == 1
    assert result.failed_uids == (
        ("INBOX", big, f"too_large: message is {len(big_raw)} bytes, the limit is {LIMIT} bytes"),
    )
    assert "1 too large" in result.summary()
    assert all(big not in uids for uids in body_fetches)  # its body was never downloaded
    position = store.messages.sync_position(box.id, "INBOX")
    assert position is not None and position.last_uid == small[-1]
    assert position.failed_uids == [
        {"uid": big, "reason": "too_large", "size": len(big_raw), "limit": LIMIT}
    ]
    # still on the server, untouched by the post-action
    assert dovecot.uids(box.name) == ([big] if action == "delete" else sorted([*small, big]))
    assert not {"\\Seen", "\\Deleted"} & dovecot.flags(box.name)[big]
    snapshot = store.tasks.get(task.task_id)
    assert snapshot.counters.failed == 1
    assert any(
        f"UID {big}: too_large" in e["message"] and str(LIMIT) in e["message"] for e in snapshot.log
    )

    again = fetcher.fetch_user(box.id)  # not retried
    assert_ok(again)
    assert again.counters.fetched == 0 and again.failed_uids == () and again.too_large == 0
    position = store.messages.sync_position(box.id, "INBOX")
    assert position is not None and [f["uid"] for f in position.failed_uids] == [big]
    assert big in dovecot.uids(box.name)
