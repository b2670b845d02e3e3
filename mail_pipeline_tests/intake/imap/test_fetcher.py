"""The IMAP mailbox fetcher against a real Dovecot, with the store on SQLite and PostgreSQL.

Each seed fault is a test here: sequence numbers + ``RFC822`` marking mail read
(``test_first_sync_window_uids_and_mail_stays_unseen``), re-downloading a window every run
(``test_nothing_new_is_one_examine_one_search_and_no_fetch``,
``test_incremental_takes_every_uid_above_the_cursor``), swallowed login errors
(``test_wrong_password_fails_only_that_user``), and delete/expunge before the save
(``test_post_actions_run_only_after_the_commit``). The kill -9 test is in
``test_fetcher_crash.py``.
"""

from __future__ import annotations

import datetime as dt
import imaplib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from mail_pipeline.errors import ImapProtocolError, StorageUnavailable
from mail_pipeline.intake.imap import fetcher as imap_fetcher
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.fetcher import (
    Batch,
    ErrorKind,
    MailboxFetcher,
    MailboxResult,
    parse_fetch_response,
    parse_size_response,
    plan_batches,
    uid_set,
)
from mail_pipeline.intake.limits import DEFAULT_MAX_MESSAGE_BYTES
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import EmailSource, MailStore, TaskStatus
from mail_pipeline_tests.fixtures.dovecot import DovecotServer, MailUser
from mail_pipeline_tests.fixtures.faults import StorageFault, nul_message

pytestmark = pytest.mark.dovecot

SECRET = "a passphrase for the imap fetcher tests"
NOW = dt.datetime.now(dt.UTC)
OLD = NOW - dt.timedelta(days=30)


def message(n: int, *, subject: str | None = None, sender: str = "bob@example.net",
            message_id: str | None = None, body: str = "") -> bytes:
    """A small RFC 5322 message with a unique Message-ID."""
    mid = message_id or f"<m{n}-{uuid.uuid4().hex}@example.net>"
    return (
        f"From: Bob <{sender}>\r\nTo: alice@example.org\r\n"
        f"Subject: {subject or f'message {n}'}\r\nMessage-ID: {mid}\r\n"
        f"Date: Tue, 01 Sep 2026 10:00:00 +0200\r\n\r\nbody {n} {body}\r\n"
    ).encode()


def with_attachment(raw: bytes, name: str) -> bytes:
    """``raw`` (a :func:`message`) as multipart with a small text attachment called ``name``."""
    head, _, body = raw.partition(b"\r\n\r\n")
    return (head + b'\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"'
            b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n" + body
            + b"--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\""
            + name.encode() + b'"\r\n\r\ncontent of ' + name.encode() + b"\r\n--b--\r\n")


class Mailbox:
    """A Dovecot test user tied to a store user with an IMAP config."""

    def __init__(self, server: DovecotServer, store: MailStore, configs: EmailConfigManager,
                 mail_user: MailUser, **options: Any) -> None:
        self.server = server
        self.mail_user = mail_user
        self.name = mail_user.username
        self.store_user = store.users.add(self.name, f"{self.name}@example.org")
        self.id = self.store_user.id
        self.configure(configs, **options)

    def configure(self, configs: EmailConfigManager, *, password: str | None = None,
                  port: int | None = None, ca_file: str | None = None,
                  folders: tuple[str, ...] = ("INBOX",), max_age_days: int | None = 7,
                  filters: tuple[str, ...] = (), post_action: str = "none",
                  move_to: str | None = None, max_message_bytes: int | None = None) -> None:
        imap: dict[str, Any] = {
            "imap_host": self.server.host,
            "imap_ssl_port": port or self.server.imaps_port,
            "security": "ssl",
            "username": self.name,
            "password": password or self.mail_user.password,
            "ca_file": ca_file or str(self.server.ca_cert_path),
            "post_action": post_action,
            "move_to": move_to,
        }
        if max_message_bytes is not None:
            imap["max_message_bytes"] = max_message_bytes
        configs.update_fetch_config(self.id, {
            "imap_config": imap,
            "filter_config": {"folders": list(folders), "max_age_days": max_age_days,
                              "filters": list(filters)},
        })

    def append(self, raw: bytes, folder: str = "INBOX", when: dt.datetime | None = None,
               flags: tuple[str, ...] = ()) -> int:
        return self.server.append(self.name, raw, folder=folder, internaldate=when or NOW,
                                  flags=flags)


@pytest.fixture
def configs(store: MailStore) -> EmailConfigManager:
    return EmailConfigManager(store, SECRET)


@pytest.fixture
def fetcher(store: MailStore, configs: EmailConfigManager, attachment_root: Path
            ) -> MailboxFetcher:
    save = EmailSaveService(store, AttachmentStorage(attachment_root, fsync=False))
    return MailboxFetcher(store, save, configs, batch_size=3, connect_timeout=5,
                          read_timeout=10)


@pytest.fixture
def mailbox(dovecot: DovecotServer, store: MailStore, configs: EmailConfigManager
            ) -> Callable[..., Mailbox]:
    def make(**options: Any) -> Mailbox:
        return Mailbox(dovecot, store, configs, dovecot.new_user(), **options)
    return make


def stored_subjects(store: MailStore, user_id: int) -> list[str]:
    return sorted(m.subject for m in store.messages.summaries(user_id))


def assert_ok(result: MailboxResult) -> None:
    assert result.ok, result.error
    assert result.error == "" and result.error_kind is ErrorKind.NONE


class CommandLog:
    """Records the IMAP command names every imaplib connection sends (all traffic goes
    through ``imaplib.IMAP4.send``, imapclient's own command writer included)."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def names(self) -> list[str]:
        return [c for c in self.commands if c not in ("LOGIN", "CAPABILITY", "LOGOUT")]


@pytest.fixture
def command_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[CommandLog]:
    record = CommandLog()
    original = imaplib.IMAP4.send

    def send(self: imaplib.IMAP4, data: bytes) -> None:
        words = bytes(data).split(b" ", 3)
        if len(words) >= 2 and words[0].startswith(self.tagpre):
            name = words[1].upper()
            if name == b"UID" and len(words) >= 3:
                name += b" " + words[2].upper()
            record.commands.append(name.decode().strip())
        original(self, data)

    monkeypatch.setattr(imaplib.IMAP4, "send", send)
    yield record


# --- pure helpers ----------------------------------------------------------------------------


def test_uid_set_compresses_runs() -> None:
    assert uid_set([1, 2, 3, 5, 7, 8]) == "1:3,5,7:8"
    assert uid_set([4]) == "4"
    with pytest.raises(ValueError):
        uid_set([])


def test_parse_fetch_response_handles_literal_first_and_unsolicited_fetches() -> None:
    data: list[Any] = [
        (b'1 FETCH (UID 10 INTERNALDATE "01-Sep-2026 10:00:00 +0200" BODY[] {5}', b"hello"),
        b")",
        b"2 FETCH (FLAGS (\\Seen))",  # an unsolicited flag update: ignored
        (b"3 FETCH (BODY[] {3}", b"abc"),  # literal first, UID after it
        b' UID 12 INTERNALDATE " 1-Jan-2020 00:00:00 +0000")',
    ]
    got = parse_fetch_response(data)
    assert [(m.uid, m.raw) for m in got] == [(10, b"hello"), (12, b"abc")]
    assert got[0].internaldate == dt.datetime(2026, 9, 1, 8, 0, tzinfo=dt.UTC)
    assert got[1].internaldate == dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    assert parse_fetch_response([None]) == []
    with pytest.raises(ImapProtocolError):
        parse_fetch_response([(b"1 FETCH (BODY[] {1}", b"x"), b")"])


def test_parse_size_response_ignores_unsolicited_fetches() -> None:
    data: list[Any] = [
        b"1 FETCH (UID 10 RFC822.SIZE 5120)",
        b"2 FETCH (FLAGS (\\Seen))",  # an unsolicited flag update: ignored
        b"3 FETCH (RFC822.SIZE 307200 UID 12)",  # any order
        None,
    ]
    assert parse_size_response(data) == {10: 5120, 12: 307200}


def test_plan_batches_bounds_uids_and_bytes_and_sets_aside_the_oversized() -> None:
    sizes = {1: 40, 2: 40, 3: 500, 4: 40, 5: 40, 6: 40, 8: 90}  # 7: gone before its size
    batches = plan_batches([1, 2, 3, 4, 5, 6, 7, 8], sizes, limit=100, batch_size=3,
                           batch_max_bytes=100)
    assert batches == [
        Batch((1, 2, 3), (1, 2), ((3, 500),)),  # 3 UIDs; the oversized one is not fetched
        Batch((4, 5), (4, 5), ()),  # 40 + 40 + 40 would pass 100 bytes
        Batch((6, 7), (6,), ()),  # 7 is covered (the cursor passes it) but not fetched
        Batch((8,), (8,), ()),
    ]
    # a message bigger than the byte bound (but within the limit) is a batch of its own
    assert plan_batches([1, 2], {1: 90, 2: 90}, limit=100, batch_size=10,
                        batch_max_bytes=50) == [Batch((1,), (1,), ()), Batch((2,), (2,), ())]
    assert plan_batches([], {}, limit=1, batch_size=1, batch_max_bytes=1) == []


def test_constructor_checks_arguments(store: MailStore, configs: EmailConfigManager,
                                      attachment_root: Path) -> None:
    save = EmailSaveService(store, AttachmentStorage(attachment_root))
    for bad in ({"batch_size": 0}, {"batch_size": True}, {"read_timeout": 0},
                {"batch_max_bytes": 0}):
        with pytest.raises(ValueError):
            MailboxFetcher(store, save, configs, **bad)


@pytest.mark.parametrize("post_action", ["none", "mark_seen"])  # with and without prefetch
def test_the_checkpoint_is_called_after_each_committed_batch(
    store: MailStore, configs: EmailConfigManager, attachment_root: Path,
    mailbox: Callable[..., Mailbox], post_action: str,
) -> None:
    box = mailbox(post_action=post_action)
    for n in range(7):
        box.append(message(n))
    seen: list[tuple[str, int]] = []

    def checkpoint(point: str) -> None:
        seen.append((point, store.messages.count(box.id)))

    save = EmailSaveService(store, AttachmentStorage(attachment_root, fsync=False))
    fetcher = MailboxFetcher(store, save, configs, batch_size=3, connect_timeout=5,
                             read_timeout=10, checkpoint=checkpoint)
    assert_ok(fetcher.fetch_user(box.id))
    # each point is reached with its batch (and every earlier one) committed
    assert seen == [("after_batch:1", 3), ("after_batch:2", 6), ("after_batch:3", 7)]


# --- syncing ---------------------------------------------------------------------------------


def test_first_sync_window_uids_and_mail_stays_unseen(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore,
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
        "INBOX", uidvalidity, uids[-1], False)
    position = store.messages.sync_position(box.id, "INBOX")
    assert position is not None and position.last_uid == uids[-1]
    assert all("\\Seen" not in flags for flags in dovecot.flags(box.name).values())
    summaries = store.messages.summaries(box.id)
    assert {m.origin for m in summaries} == {f"imap:INBOX:{uidvalidity}:{u}" for u in uids}
    assert all(m.source == EmailSource.IMAP.value for m in summaries)
    received = {abs((m.received_at.replace(tzinfo=dt.UTC) if m.received_at.tzinfo is None
                     else m.received_at) - NOW) for m in summaries}
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


def test_two_folders_and_the_same_message_in_both_is_stored_once(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore,
    dovecot: DovecotServer,
) -> None:
    box = mailbox(folders=("INBOX", "Work"))
    dovecot.create_folder(box.name, "Work")
    for n in range(4):
        box.append(message(n, subject=f"inbox {n}"))
    for n in range(2):
        box.append(message(n, subject=f"work {n}"), folder="Work")
    shared = message(99, subject="in both", message_id="<shared@example.net>")
    box.append(shared)
    box.append(shared, folder="Work")

    result = fetcher.fetch_user(box.id)

    assert_ok(result)
    assert [f.folder for f in result.folders] == ["INBOX", "Work"]
    assert [f.fetched for f in result.folders] == [5, 3]
    assert result.counters.saved == 7 and result.counters.duplicate == 1
    assert stored_subjects(store, box.id).count("in both") == 1
    assert {p.folder for p in store.messages.sync_positions(box.id)} == {"INBOX", "Work"}


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
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore,
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


# --- the size limit --------------------------------------------------------------------------


LIMIT = 100 * 1024


def big_message(n: int, size: int = 300 * 1024) -> bytes:
    """A message of exactly ``size`` bytes (CRLF lines, as IMAP counts RFC822.SIZE)."""
    head = message(n, subject=f"big {n}")
    line = b"x" * 998 + b"\r\n"
    body = line * ((size - len(head)) // len(line))
    tail = b"y" * (size - len(head) - len(body) - 2) + b"\r\n"
    raw = head + body + tail
    assert len(raw) == size
    return raw


@pytest.fixture
def body_fetches(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The UIDs of every body ``UID FETCH`` the fetcher sends."""
    seen: list[list[int]] = []
    original = imap_fetcher._fetch_raw

    def spy(client: Any, uids: list[int]) -> list[Any]:
        seen.append(list(uids))
        return original(client, uids)

    monkeypatch.setattr(imap_fetcher, "_fetch_raw", spy)
    return seen


@pytest.mark.parametrize("action", ["none", "delete"])
def test_a_message_over_the_limit_is_recorded_too_large_and_left_on_the_server(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore,
    dovecot: DovecotServer, body_fetches: list[list[int]], action: str,
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
        ("INBOX", big,
         f"too_large: message is {len(big_raw)} bytes, the limit is {LIMIT} bytes"),)
    assert "1 too large" in result.summary()
    assert all(big not in uids for uids in body_fetches)  # its body was never downloaded
    position = store.messages.sync_position(box.id, "INBOX")
    assert position is not None and position.last_uid == small[-1]
    assert position.failed_uids == [
        {"uid": big, "reason": "too_large", "size": len(big_raw), "limit": LIMIT}]
    # still on the server, untouched by the post-action
    assert dovecot.uids(box.name) == ([big] if action == "delete" else sorted([*small, big]))
    assert not {"\\Seen", "\\Deleted"} & dovecot.flags(box.name)[big]
    snapshot = store.tasks.get(task.task_id)
    assert snapshot.counters.failed == 1
    assert any(f"UID {big}: too_large" in e["message"] and str(LIMIT) in e["message"]
               for e in snapshot.log)

    again = fetcher.fetch_user(box.id)  # not retried
    assert_ok(again)
    assert again.counters.fetched == 0 and again.failed_uids == () and again.too_large == 0
    position = store.messages.sync_position(box.id, "INBOX")
    assert position is not None and [f["uid"] for f in position.failed_uids] == [big]
    assert big in dovecot.uids(box.name)


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
    assert any(f"UID {big}: too_large" in e["message"]
               for e in store.tasks.get(task.task_id).log)


def test_the_limit_is_per_account_and_defaults_to_the_spools(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore,
    configs: EmailConfigManager,
) -> None:
    from mail_pipeline.intake.spool.ingest import DEFAULT_MAX_SIZE

    strict = mailbox(max_message_bytes=LIMIT)
    roomy = mailbox(max_message_bytes=400 * 1024)
    default = mailbox()
    assert configs.imap_fetch_config(default.id).max_message_bytes == DEFAULT_MAX_SIZE
    assert DEFAULT_MAX_MESSAGE_BYTES == DEFAULT_MAX_SIZE == 25 * 1024 * 1024
    for box in (strict, roomy, default):
        box.append(big_message(1))

    results = [fetcher.fetch_user(box.id) for box in (strict, roomy, default)]

    assert [r.too_large for r in results] == [1, 0, 0]
    assert [store.messages.count(box.id) for box in (strict, roomy, default)] == [0, 1, 1]


def test_a_message_bigger_than_its_rfc822_size_is_still_not_stored(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box = mailbox(max_message_bytes=LIMIT)
    big_raw = big_message(1)
    big = box.append(big_raw)
    box.append(message(2))
    understated = imap_fetcher._fetch_sizes
    monkeypatch.setattr(imap_fetcher, "_fetch_sizes", lambda client, uids: {
        uid: 10 for uid in understated(client, uids)})
    result = fetcher.fetch_user(box.id)
    assert_ok(result)
    assert stored_subjects(store, box.id) == ["message 2"]
    assert result.failed_uids == (
        ("INBOX", big,
         f"too_large: message is {len(big_raw)} bytes, the limit is {LIMIT} bytes"),)
    position = store.messages.sync_position(box.id, "INBOX")
    assert position is not None and position.failed_uids == [
        {"uid": big, "reason": "too_large", "size": len(big_raw), "limit": LIMIT}]


def test_batches_are_bounded_by_bytes(
    store: MailStore, configs: EmailConfigManager, attachment_root: Path,
    mailbox: Callable[..., Mailbox], body_fetches: list[list[int]],
) -> None:
    box = mailbox()
    uids = [box.append(big_message(n, size=30 * 1024)) for n in range(5)]
    save = EmailSaveService(store, AttachmentStorage(attachment_root, fsync=False))
    fetcher = MailboxFetcher(store, save, configs, batch_size=100,
                             batch_max_bytes=70 * 1024, connect_timeout=5, read_timeout=10)
    result = fetcher.fetch_user(box.id)
    assert_ok(result)
    assert result.counters.saved == 5
    assert body_fetches == [uids[0:2], uids[2:4], uids[4:]]


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
    store: MailStore, configs: EmailConfigManager, attachment_root: Path,
    mailbox: Callable[..., Mailbox],
) -> None:
    """Any error class harms only its message: recorded in failed_uids, the cursor moves on."""
    class TypeErrorOnBad(AttachmentStorage):
        def write(self, user_id: int, filename: str, content: bytes, *, sync: bool = True
                  ) -> str:
            if filename == "bad.txt":
                raise TypeError("cannot take this one")
            return super().write(user_id, filename, content, sync=sync)

    save = EmailSaveService(store, TypeErrorOnBad(attachment_root, fsync=False))
    fetcher = MailboxFetcher(store, save, configs, batch_size=10, connect_timeout=5,
                             read_timeout=10)
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
    store: MailStore, configs: EmailConfigManager, mailbox: Callable[..., Mailbox],
    storage_fault: StorageFault,
) -> None:
    """A full or read-only attachment root is not the message's fault: nothing is skipped."""
    save = EmailSaveService(store, AttachmentStorage(storage_fault.path, fsync=False))
    fetcher = MailboxFetcher(store, save, configs, batch_size=2, connect_timeout=5,
                             read_timeout=10)
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


# --- post-actions ----------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["mark_seen", "move", "delete"])
def test_post_actions_run_only_after_the_commit(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore,
    dovecot: DovecotServer, monkeypatch: pytest.MonkeyPatch, action: str,
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
    assert all("\\Seen" not in f and "\\Deleted" not in f
               for f in dovecot.flags(box.name).values())
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
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore,
    dovecot: DovecotServer, monkeypatch: pytest.MonkeyPatch, command_log: CommandLog,
) -> None:
    box = mailbox(post_action="move", move_to="Archive")
    dovecot.create_folder(box.name, "Archive")
    for n in range(4):
        box.append(message(n))
    monkeypatch.setattr(MailboxFetcher, "_has_capability",
                        staticmethod(lambda _client, name: name != "MOVE"))
    assert_ok(fetcher.fetch_user(box.id))
    assert "UID MOVE" not in command_log.names()
    assert {"UID COPY", "UID STORE", "UID EXPUNGE"} <= set(command_log.names())
    assert dovecot.uids(box.name) == [] and len(dovecot.uids(box.name, "Archive")) == 4


def test_a_refused_post_action_is_a_warning_and_keeps_the_messages(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore,
    dovecot: DovecotServer,
) -> None:
    box = mailbox(post_action="move", move_to="NoSuchFolder")
    box.append(message(1))
    result = fetcher.fetch_user(box.id)
    assert_ok(result)
    assert store.messages.count(box.id) == 1
    assert len(result.warnings) == 1 and "move" in result.warnings[0]
    assert len(dovecot.uids(box.name)) == 1


# --- isolation and errors --------------------------------------------------------------------


def test_wrong_password_fails_only_that_user(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore
) -> None:
    boxes = [mailbox() for _ in range(3)]
    for box in boxes:
        box.append(message(1))
    wrong = "Wr0ng-Secret-Pa55word"
    boxes[1].configure(fetcher.configs, password=wrong)
    task = store.tasks.create(EmailSource.IMAP, status=TaskStatus.RUNNING)

    results = [fetcher.fetch_user(b.id, task_id=task.task_id) for b in boxes]

    assert [r.ok for r in results] == [True, False, True]
    failed = results[1]
    assert failed.error_kind is ErrorKind.AUTH and not failed.transient
    assert wrong not in failed.error and boxes[1].name in failed.error
    assert [store.messages.count(b.id) for b in boxes] == [1, 0, 1]
    snapshot = store.tasks.get(task.task_id)
    assert snapshot.counters.saved == 2
    errors = [e for e in snapshot.log if e["level"] == "ERROR"]
    assert len(errors) == 1 and boxes[1].name in errors[0]["message"]
    assert wrong not in str(snapshot.details)


def test_tls_with_a_wrong_ca_is_refused(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], dovecot: DovecotServer
) -> None:
    box = mailbox(ca_file=str(dovecot.wrong_ca_cert_path))
    result = fetcher.fetch_user(box.id)
    assert result.error_kind is ErrorKind.TLS and not result.transient
    assert "certificate" in result.error


def test_unreachable_server_and_missing_config(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    box = mailbox(port=closed_port)
    result = fetcher.fetch_user(box.id)
    assert result.error_kind is ErrorKind.CONNECT and result.transient
    nobody = store.users.add("no-config", "no-config@example.org")
    result = fetcher.fetch_user(nobody.id)
    assert result.error_kind is ErrorKind.CONFIG and not result.transient
    assert fetcher.fetch_user("nobody-at-all").error_kind is ErrorKind.CONFIG


def test_a_missing_folder_fails_only_that_folder(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore
) -> None:
    box = mailbox(folders=("Missing", "INBOX"))
    box.append(message(1))
    result = fetcher.fetch_user(box.id)
    assert result.error_kind is ErrorKind.PROTOCOL and "Missing" in result.error
    assert [f.folder for f in result.folders] == ["INBOX"]
    assert store.messages.count(box.id) == 1


def test_server_stopped_mid_run_then_the_next_run_completes_without_duplicates(
    private_dovecot: DovecotServer, store: MailStore, configs: EmailConfigManager,
    attachment_root: Path,
) -> None:
    server = private_dovecot
    boxes = [Mailbox(server, store, configs, server.new_user()) for _ in range(2)]
    for box in boxes:
        for n in range(7):
            box.append(message(n))
    save = EmailSaveService(store, AttachmentStorage(attachment_root, fsync=False))
    fetcher = MailboxFetcher(store, save, configs, batch_size=2, connect_timeout=3,
                             read_timeout=5)
    calls: list[tuple[int, int]] = []

    def stop_after_first_batch(done: int, total: int) -> None:
        calls.append((done, total))
        if done >= 2:
            server.stop()

    first = fetcher.fetch_user(boxes[0].id, progress=stop_after_first_batch)
    second = fetcher.fetch_user(boxes[1].id)

    assert first.error_kind is ErrorKind.CONNECT and first.transient
    assert second.error_kind is ErrorKind.CONNECT
    assert calls[0] == (0, 7)
    # the batch being prefetched when the server stopped may still be committed
    kept = store.messages.count(boxes[0].id)
    assert 2 <= kept < 7 and first.counters.saved == kept
    server.start()
    for box in boxes:
        assert_ok(fetcher.fetch_user(box.id))
        assert store.messages.count(box.id) == 7
        subjects = stored_subjects(store, box.id)
        assert len(set(subjects)) == 7
