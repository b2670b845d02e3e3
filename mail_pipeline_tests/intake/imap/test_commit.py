"""Committing a fetched batch with its cursor: a message that does not parse, is refused by
the store or is over the limit harms only itself (recorded, the cursor moves past it); a
fault of the environment keeps the cursor, so the next run stores everything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from mail_pipeline.errors import StorageUnavailable
from mail_pipeline.intake.imap import sync as imap_sync
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.fetcher import MailboxFetcher
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import EmailSource, MailStore, TaskStatus
from mail_pipeline_tests.fixtures.faults import StorageFault, nul_message
from mail_pipeline_tests.intake.imap.mailboxes import (
    LIMIT,
    Mailbox,
    assert_ok,
    big_message,
    message,
    stored_subjects,
    with_attachment,
)

pytestmark = pytest.mark.dovecot


def test_garbage_message_is_recorded_and_the_cursor_moves_past_it(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore
) -> None:
    box = mailbox()
    box.append(message(1))
    bad = box.append(b"this is not an e-mail at all, just a line of text\r\n")
    last = box.append(message(3))

    result = fetcher.fetch_user(box.id)

    assert_ok(result)
    assert (result.counters.fetched, result.counters.saved, result.counters.failed) == (3, 2, 1)
    ((folder, uid, reason),) = result.failed_uids
    assert (folder, uid) == ("INBOX", bad) and "not_a_message" in reason
    position = store.messages.sync_position(box.id, "INBOX")
    assert position is not None and position.last_uid == last
    assert [f["uid"] for f in position.failed_uids] == [bad]
    again = fetcher.fetch_user(box.id)  # not retried forever
    assert again.counters.fetched == 0 and again.failed_uids == ()


def test_only_too_large_mail_is_still_logged_on_the_task(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore
) -> None:
    box = mailbox(max_message_bytes=LIMIT)
    big = box.append(big_message(1))
    task = store.tasks.create(EmailSource.IMAP, status=TaskStatus.RUNNING)
    result = fetcher.fetch_user(box.id, task_id=task.task_id)
    assert_ok(result)
    assert result.counters.fetched == 0 and result.too_large == 1
    position = store.messages.sync_position(box.id, "INBOX")
    assert position is not None and position.last_uid == big
    assert any(f"UID {big}: too_large" in e["message"] for e in store.tasks.get(task.task_id).log)


def test_a_message_bigger_than_its_rfc822_size_is_still_not_stored(
    fetcher: MailboxFetcher,
    mailbox: Callable[..., Mailbox],
    store: MailStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box = mailbox(max_message_bytes=LIMIT)
    big_raw = big_message(1)
    big = box.append(big_raw)
    box.append(message(2))
    understated = imap_sync.fetch_sizes
    monkeypatch.setattr(
        imap_sync,
        "fetch_sizes",
        lambda client, uids: {uid: 10 for uid in understated(client, uids)},
    )
    result = fetcher.fetch_user(box.id)
    assert_ok(result)
    assert stored_subjects(store, box.id) == ["message 2"]
    assert result.failed_uids == (
        ("INBOX", big, f"too_large: message is {len(big_raw)} bytes, the limit is {LIMIT} bytes"),
    )
    position = store.messages.sync_position(box.id, "INBOX")
    assert position is not None and position.failed_uids == [
        {"uid": big, "reason": "too_large", "size": len(big_raw), "limit": LIMIT}
    ]


# Only the encoded NUL forms reach the fetcher through Dovecot: it serves a raw NUL byte of an
# APPENDed message as 0x80. The raw forms are covered on the same save path by the spool and
# save-service tests.
@pytest.mark.parametrize("form", ["encoded_word", "rfc2231"])
def test_a_nul_attachment_is_stored_cleaned_and_the_cursor_moves_past_it(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore, form: str
) -> None:
    """On PostgreSQL its ValueError failed the mailbox on every run: the cursor never moved."""
    box = mailbox()
    box.append(message(1))
    box.append(nul_message(2, form, to=f"{box.name}@example.org"))
    last = box.append(message(3))
    task = store.tasks.create(EmailSource.IMAP, status=TaskStatus.RUNNING)

    result = fetcher.fetch_user(box.id, task_id=task.task_id)

    assert_ok(result)
    assert (result.counters.fetched, result.counters.saved, result.counters.failed) == (3, 3, 0)
    assert result.failed_uids == ()
    position = store.messages.sync_position(box.id, "INBOX")
    assert position is not None and position.last_uid == last
    poison = next(m for m in store.messages.summaries(box.id) if m.subject == "poison 2")
    (attachment,) = store.messages.get_content(poison.id)["attachments"]
    assert "\x00" not in f"{attachment['filename']}{attachment['content_id']}"
    assert store.tasks.get(task.task_id).status is TaskStatus.RUNNING  # not FAILED
    assert fetcher.fetch_user(box.id).counters.fetched == 0


def test_an_unexpected_error_saving_one_message_records_its_uid(
    store: MailStore,
    configs: EmailConfigManager,
    attachment_root: Path,
    mailbox: Callable[..., Mailbox],
) -> None:
    """Any error class harms only its message: recorded in failed_uids, the cursor moves on."""

    class TypeErrorOnBad(AttachmentStorage):
        def write(
            self,
            user_id: int,
            filename: str,
            content: bytes | Iterable[bytes],
            *,
            sync: bool = True,
        ) -> str:
            if filename == "bad.txt":
                raise TypeError("cannot take this one")
            return super().write(user_id, filename, content, sync=sync)

    save = EmailSaveService(store, TypeErrorOnBad(attachment_root, fsync=False))
    fetcher = MailboxFetcher(
        store, save, configs, batch_size=10, connect_timeout=5, read_timeout=10
    )
    box = mailbox()
    box.append(message(1))
    bad = box.append(with_attachment(message(2), "bad.txt"))
    last = box.append(message(3))

    result = fetcher.fetch_user(box.id)

    assert_ok(result)
    assert (result.counters.fetched, result.counters.saved, result.counters.failed) == (3, 2, 1)
    ((folder, uid, reason),) = result.failed_uids
    assert (folder, uid) == ("INBOX", bad) and "TypeError: cannot take this one" in reason
    position = store.messages.sync_position(box.id, "INBOX")
    assert position is not None and position.last_uid == last
    assert [f["uid"] for f in position.failed_uids] == [bad]


def test_a_storage_fault_keeps_the_cursor_and_the_next_run_stores_all(
    store: MailStore,
    configs: EmailConfigManager,
    mailbox: Callable[..., Mailbox],
    storage_fault: StorageFault,
) -> None:
    """A full or read-only attachment root is not the message's fault: nothing is skipped."""
    save = EmailSaveService(store, AttachmentStorage(storage_fault.path, fsync=False))
    fetcher = MailboxFetcher(store, save, configs, batch_size=2, connect_timeout=5, read_timeout=10)
    box = mailbox()
    first = box.append(with_attachment(message(1), "one.txt"))
    assert_ok(fetcher.fetch_user(box.id))
    uids = [box.append(with_attachment(message(n), f"{n}.txt")) for n in range(2, 7)]
    task = store.tasks.create(EmailSource.IMAP, status=TaskStatus.RUNNING)
    storage_fault.inject()

    with pytest.raises(StorageUnavailable):
        fetcher.fetch_user(box.id, task_id=task.task_id)

    position = store.messages.sync_position(box.id, "INBOX")
    assert position is not None and position.last_uid == first and position.failed_uids == []
    assert store.messages.count(box.id) == 1
    log = store.tasks.get(task.task_id).log
    assert any(e["level"] == "ERROR" and "StorageUnavailable" in e["message"] for e in log)

    storage_fault.clear()
    result = fetcher.fetch_user(box.id)
    assert_ok(result)
    assert (result.counters.saved, result.counters.failed) == (5, 0)
    position = store.messages.sync_position(box.id, "INBOX")
    assert position is not None and position.last_uid == uids[-1]
    assert store.messages.count(box.id) == 6
