"""The save service: one copy per user, attachments on disk only for stored rows."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from mail_pipeline.errors import SaveError, StorageUnavailable
from mail_pipeline.mime import ParsedMessage, parse_message
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.deliveries import Delivery, Outcome, dedup_key
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import (
    EmailSource,
    MailStore,
    NewMessage,
    SyncUpdate,
)
from mail_pipeline_tests.fixtures.faults import NUL_FORMS, StorageFault, nul_message

IMAP = EmailSource.IMAP


def make_raw(
    n: int,
    *,
    message_id: bool = True,
    date: bool = True,
    attachments: tuple[str, ...] = (),
    to: str = "alice@example.org",
) -> bytes:
    """Return a small message; ``attachments`` are file names of text attachments."""
    headers = ["From: Bob <bob@example.net>", f"To: {to}", f"Subject: message {n}"]
    if message_id:
        headers.append(f"Message-ID: <msg-{n}@example.net>")
    if date:
        headers.append("Date: Tue, 01 Sep 2026 10:00:00 +0200")
    if not attachments:
        return ("\r\n".join(headers) + f"\r\n\r\nbody {n}\r\n").encode()
    headers += ["MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="b"']
    parts = [f"--b\r\nContent-Type: text/plain\r\n\r\nbody {n}\r\n"]
    for i, name in enumerate(attachments):
        parts.append(
            f"--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; "
            f'filename="{name}"\r\n\r\nattachment {n}.{i}\r\n'
        )
    return ("\r\n".join(headers) + "\r\n\r\n" + "".join(parts) + "--b--\r\n").encode()


@pytest.fixture
def service(store: MailStore, attachment_root: Path) -> EmailSaveService:
    return EmailSaveService(store, AttachmentStorage(attachment_root, fsync=False))


@pytest.fixture
def alice(store: MailStore) -> int:
    return store.users.add("alice", "alice@example.org").id


def test_save_then_duplicate(service: EmailSaveService, store: MailStore, alice: int) -> None:
    parsed = parse_message(make_raw(1, attachments=("same.txt", "same.txt")))
    first = service.save(alice, parsed, source=IMAP, origin="imap:INBOX:1:1")
    assert first.outcome is Outcome.SAVED
    second = service.save(alice, parsed, source=IMAP)
    assert second.outcome is Outcome.DUPLICATE
    stored = store.messages.summaries(alice)
    assert len(stored) == 1
    assert stored[0].message_id == "msg-1@example.net"
    assert stored[0].subject == "message 1"
    assert stored[0].recipients == ["alice@example.org"]
    assert stored[0].origin == "imap:INBOX:1:1"
    paths = stored[0].attachment_paths
    assert len(paths) == 2 and len(set(paths)) == 2
    files = sorted(service.attachments.iter_files())
    assert files == sorted(paths)
    contents = sorted(service.attachments.path_of(p).read_bytes() for p in paths)
    assert contents == [b"attachment 1.0", b"attachment 1.1"]
    content = store.messages.get_content(stored[0].id)
    assert content["raw_content"] == parsed.raw
    assert content["text_content"].strip() == "body 1"
    assert [a["safe_filename"] for a in content["attachments"]] == ["same.txt", "same.txt"]


def test_missing_message_id_and_date_is_stored_once(
    service: EmailSaveService, store: MailStore, alice: int
) -> None:
    """The seed hashed subject+sender+date, so a message without Date came back every run."""
    raw = make_raw(2, message_id=False, date=False)
    parsed = parse_message(raw)
    assert parsed.message_id is None and parsed.date is None
    assert dedup_key(parsed) == f"sha256:{parsed.content_hash}"
    for _ in range(3):
        service.save(alice, parse_message(raw), source=IMAP)
    assert store.messages.count(alice) == 1
    # The same message with an extra trace header is still the same message.
    traced = parse_message(b"Received: from mx by us; Tue, 1 Sep 2026 10:00:01 +0000\r\n" + raw)
    assert service.save(alice, traced, source=EmailSource.HARAKA).outcome is Outcome.DUPLICATE


def test_one_copy_per_user(service: EmailSaveService, store: MailStore, alice: int) -> None:
    bob = store.users.add("bob", "bob@example.org").id
    parsed = parse_message(make_raw(3, attachments=("a.txt",)))
    batch = service.save_batch(
        [
            Delivery(alice, parsed, IMAP),
            Delivery(bob, parsed, IMAP),
            Delivery(alice, parsed, IMAP),
        ]
    )
    assert [r.outcome for r in batch.results] == [
        Outcome.SAVED,
        Outcome.SAVED,
        Outcome.DUPLICATE,
    ]
    assert (batch.saved, batch.duplicates, batch.failed) == (2, 1, 0)
    assert store.messages.count(alice) == 1 and store.messages.count(bob) == 1
    assert len(list(service.attachments.iter_files())) == 2


def test_received_at_prefers_the_delivery_time(
    service: EmailSaveService, store: MailStore, alice: int
) -> None:
    when = datetime(2026, 9, 2, 8, 0, tzinfo=UTC)
    service.save(alice, parse_message(make_raw(4)), source=IMAP, received_at=when)
    service.save(alice, parse_message(make_raw(5)), source=IMAP)
    first, second = store.messages.summaries(alice)
    assert first.received_at == when
    assert second.received_at == datetime(2026, 9, 1, 8, 0, tzinfo=UTC)  # from its Date


def test_a_failing_attachment_fails_only_its_message(
    store: MailStore, attachment_root: Path, alice: int
) -> None:
    class FailsOnBad(AttachmentStorage):
        def write(
            self,
            user_id: int,
            filename: str,
            content: bytes | Iterable[bytes],
            *,
            sync: bool = True,
        ) -> str:
            if filename == "bad.txt":
                raise SaveError("disk full")
            return super().write(user_id, filename, content, sync=sync)

    service = EmailSaveService(store, FailsOnBad(attachment_root, fsync=False))
    good = parse_message(make_raw(6, attachments=("good.txt",)))
    bad = parse_message(make_raw(7, attachments=("first.txt", "bad.txt")))
    batch = service.save_batch([Delivery(alice, bad, IMAP), Delivery(alice, good, IMAP)])
    assert batch.results[0].outcome is Outcome.FAILED
    assert "disk full" in batch.results[0].error
    assert batch.results[1].outcome is Outcome.SAVED
    # first.txt, written before bad.txt failed, is gone again.
    assert [Path(p).name.split("_", 1)[1] for p in service.attachments.iter_files()] == ["good.txt"]


def test_a_failed_transaction_leaves_no_files(
    service: EmailSaveService, store: MailStore, alice: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_args: object, **_kwargs: object) -> list[int | None]:
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(store.messages, "insert_batch", down)
    with pytest.raises(OperationalError):
        service.save_batch(
            [Delivery(alice, parse_message(make_raw(8, attachments=("x.txt",))), IMAP)]
        )
    assert list(service.attachments.iter_files()) == []


def test_nul_in_text_is_stored_without_it(
    service: EmailSaveService, store: MailStore, alice: int
) -> None:
    parsed = dataclasses.replace(parse_message(make_raw(9)), text="a\x00b")
    assert service.save(alice, parsed, source=IMAP).outcome is Outcome.SAVED
    pk = store.messages.summaries(alice)[0].id
    assert store.messages.get_content(pk)["text_content"] == "ab"


def test_sync_position_commits_with_the_batch(
    service: EmailSaveService, store: MailStore, alice: int
) -> None:
    now = datetime(2026, 9, 3, tzinfo=UTC)
    sync = SyncUpdate(alice, "INBOX", 77, 12, now, failed_uids=((11, "not_a_message"),))
    service.save_batch([Delivery(alice, parse_message(make_raw(10)), IMAP)], sync=[sync])
    pos = store.messages.sync_position(alice, "INBOX")
    assert pos is not None and (pos.uidvalidity, pos.last_uid) == (77, 12)
    assert pos.failed_uids == [{"uid": 11, "reason": "not_a_message"}]
    # The cursor never moves back; a new UIDVALIDITY resets it.
    store.messages.update_sync(SyncUpdate(alice, "INBOX", 77, 5, now))
    assert store.messages.sync_position(alice, "INBOX").last_uid == 12  # type: ignore[union-attr]
    store.messages.update_sync(SyncUpdate(alice, "INBOX", 78, 3, now))
    pos = store.messages.sync_position(alice, "INBOX")
    assert pos is not None and (pos.uidvalidity, pos.last_uid, pos.failed_uids) == (78, 3, [])


def test_concurrent_saves_store_once(store_url: str, attachment_root: Path) -> None:
    store = MailStore(store_url)
    user = store.users.add("carol", "carol@example.org").id
    parsed = [parse_message(make_raw(100 + i, attachments=("f.txt",))) for i in range(20)]
    barrier = threading.Barrier(4)
    outcomes: list[Outcome] = []

    def worker() -> None:
        service = EmailSaveService(store, AttachmentStorage(attachment_root, fsync=False))
        barrier.wait()
        for p in parsed:
            outcomes.append(service.save_batch([Delivery(user, p, IMAP)]).results[0].outcome)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count(Outcome.SAVED) == 20
    assert outcomes.count(Outcome.DUPLICATE) == 60
    assert store.messages.count(user) == 20
    # No orphan files: exactly one attachment file per stored message.
    assert len(list(AttachmentStorage(attachment_root).iter_files())) == 20
    store.dispose()


def test_find_users_by_recipients(service: EmailSaveService, store: MailStore) -> None:
    """The seed matched case-sensitively and gave the mail to the first user only."""
    alice = store.users.add("alice", "Alice@Example.org").id
    bob = store.users.add("bob", "bob@example.org").id
    store.users.add_alias("bob", "Team@Example.org")
    store.users.add_alias("alice", "team-lead@example.org")
    dave = store.users.add("dave", "dave@example.org", is_active=False).id
    assert service.find_users_by_recipients(["ALICE@example.ORG"]) == [alice]
    assert service.find_users_by_recipients(
        ["<team@example.org>", "Team-Lead@example.org", "nobody@example.org"]
    ) == sorted([alice, bob])
    assert service.find_users_by_recipients(["dave@example.org"]) == []
    assert dave not in service.find_users_by_recipients(["dave@example.org", "bob@example.org"])
    assert service.resolve_recipients(["TEAM@example.org"]) == {"team@example.org": {bob}}


CORPUS = Path(__file__).parents[1] / "data" / "corpus"


def test_resaving_the_whole_corpus_twice_keeps_one_copy_per_user(
    service: EmailSaveService, store: MailStore, alice: int
) -> None:
    """Every corpus message that parses, saved for two users, twice: one copy each."""
    from mail_pipeline.errors import MessageParseError

    bob = store.users.add("bob", "bob@example.org").id
    parsed = []
    for path in sorted(CORPUS.glob("*.eml")):
        try:
            parsed.append(parse_message(path.read_bytes()))
        except MessageParseError:
            continue
    assert len(parsed) >= 40
    distinct = {dedup_key(p) for p in parsed}
    for _ in range(2):
        batch = service.save_batch(
            [Delivery(user, p, IMAP) for p in parsed for user in (alice, bob)]
        )
        assert batch.failed == 0
    for user in (alice, bob):
        stored = store.messages.summaries(user, limit=10_000)
        assert len(stored) == len(distinct)
        assert len({m.dedup_key for m in stored}) == len(stored)
    files = list(service.attachments.iter_files())
    first: dict[str, ParsedMessage] = {}
    for p in parsed:
        first.setdefault(dedup_key(p), p)  # the first of a key is the one stored
    expected_files = 2 * sum(len(p.attachments) for p in first.values())
    assert len(files) == expected_files


# --- poison messages and faults of the environment -----------------------------------------


@pytest.mark.parametrize("form", sorted(NUL_FORMS))
def test_a_nul_in_an_attachment_name_or_content_id_is_stored_without_it(
    service: EmailSaveService, store: MailStore, alice: int, form: str
) -> None:
    """psycopg2 refused the NUL with a plain ValueError that escaped the whole batch."""
    good = [parse_message(make_raw(200 + i, attachments=("good.txt",))) for i in range(2)]
    poison = parse_message(nul_message(1, form))
    batch = service.save_batch(
        [
            Delivery(alice, good[0], IMAP),
            Delivery(alice, poison, IMAP),
            Delivery(alice, good[1], IMAP),
        ]
    )
    assert [r.outcome for r in batch.results] == [Outcome.SAVED] * 3, batch.results
    content = store.messages.get_content(batch.results[1].message_pk or 0)
    (attachment,) = content["attachments"]
    if form == "content_id":
        assert attachment["content_id"] == "ab@example.net"
    else:
        assert attachment["filename"] == "ab.txt"
        assert "\x00" not in attachment["safe_filename"]
    assert content["raw_content"] == poison.raw  # the original stays in the raw bytes
    assert store.messages.count(alice) == 3


@pytest.mark.parametrize("where", ["attachment_write", "insert"])
def test_any_error_saving_one_message_fails_only_that_message(
    store: MailStore,
    attachment_root: Path,
    alice: int,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """Not only SQLAlchemy errors: a TypeError of a writer, a driver's ValueError at insert."""

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
                raise TypeError("a writer that cannot take this name")
            return super().write(user_id, filename, content, sync=sync)

    service = EmailSaveService(store, TypeErrorOnBad(attachment_root, fsync=False))
    if where == "insert":
        original = store.messages.insert_batch

        def refuse_poison(
            messages: Sequence[NewMessage], sync: Sequence[SyncUpdate] = ()
        ) -> list[int | None]:
            if any(m.subject == "message 302" for m in messages):
                raise ValueError("A string literal cannot contain NUL (0x00) characters.")
            return original(messages, sync)

        monkeypatch.setattr(store.messages, "insert_batch", refuse_poison)
    names = {"attachment_write": ("first.txt", "bad.txt"), "insert": ("first.txt",)}[where]
    parsed = [
        parse_message(make_raw(301, attachments=("a.txt",))),
        parse_message(make_raw(302, attachments=names)),
        parse_message(make_raw(303)),
    ]
    sync = SyncUpdate(alice, "INBOX", 9, 30, datetime(2026, 9, 3, tzinfo=UTC))
    batch = service.save_batch([Delivery(alice, p, IMAP) for p in parsed], sync=[sync])
    assert [r.outcome for r in batch.results] == [Outcome.SAVED, Outcome.FAILED, Outcome.SAVED]
    expected = "TypeError" if where == "attachment_write" else "ValueError"
    assert batch.results[1].error.startswith(expected), batch.results[1].error
    assert sorted(m.subject for m in store.messages.summaries(alice)) == [
        "message 301",
        "message 303",
    ]
    position = store.messages.sync_position(alice, "INBOX")
    assert position is not None and position.last_uid == 30  # the cursor still moves on
    # The failed message's files are gone; the stored one's stay.
    assert [Path(p).name.split("_", 1)[1] for p in service.attachments.iter_files()] == ["a.txt"]


def test_a_storage_fault_raises_and_leaves_nothing(
    store: MailStore, alice: int, storage_fault: StorageFault
) -> None:
    """Disk full or read-only is not the message's fault: raise, store nothing, move no cursor."""
    service = EmailSaveService(store, AttachmentStorage(storage_fault.path, fsync=False))
    parsed = [parse_message(make_raw(400)), parse_message(make_raw(401, attachments=("x.txt",)))]
    sync = SyncUpdate(alice, "INBOX", 9, 41, datetime(2026, 9, 3, tzinfo=UTC))
    storage_fault.inject()
    with pytest.raises(StorageUnavailable):
        service.save_batch([Delivery(alice, p, IMAP) for p in parsed], sync=[sync])
    assert store.messages.count(alice) == 0
    assert store.messages.sync_position(alice, "INBOX") is None
    storage_fault.clear()
    assert list(service.attachments.iter_files()) == []
    batch = service.save_batch([Delivery(alice, p, IMAP) for p in parsed], sync=[sync])
    assert batch.saved == 2
    assert len(list(service.attachments.iter_files())) == 1
