"""One batch of the spool ingest: routing, parsing, quarantine, one save call (real store)."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from mail_pipeline.intake.spool.ingest import SpoolIngestService
from mail_pipeline.storage.store import MailStore, TaskStatus
from mail_pipeline_tests.fixtures.faults import NUL_FORMS, nul_message
from mail_pipeline_tests.fixtures.spool_files import all_files, make_raw, write_pair
from mail_pipeline_tests.intake.spool.support import stored


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


# --- routing -------------------------------------------------------------------------------


def test_single_recipient(
    service: SpoolIngestService, store: MailStore, spool: Path, users: dict[str, int]
) -> None:
    sid = write_pair(spool, make_raw(1), ["alice@example.org"])
    result = service.ingest()
    assert (result.found, result.saved, result.failed, result.unmatched) == (1, 1, 0, 0)
    rows = store.messages.summaries()
    assert [(m.user_id, m.subject, m.source, m.origin) for m in rows] == [
        (users["alice"], "message 1", "HARAKA_EMAIL_FETCH", f"haraka:{sid}")
    ]
    files = all_files(spool)
    assert files["inbox"] == [] and files["claims"] == []
    assert files["processed"] == [f"{sid}.eml", f"{sid}.meta"]
    day = next((spool / "processed").iterdir())
    assert len(day.name) == 10 and (day / f"{sid}.eml").read_bytes() == make_raw(1)


def test_multiple_recipients_and_bcc_only_in_envelope(
    service: SpoolIngestService, store: MailStore, spool: Path, users: dict[str, int]
) -> None:
    # Header says only alice; the envelope also has bob (Bcc) and carol: all three get it.
    write_pair(
        spool,
        make_raw(2, to="alice@example.org"),
        ["alice@example.org", "bob@example.org", "carol@example.org"],
    )
    result = service.ingest()
    assert result.saved == 3
    assert stored(store) == Counter({(u, "spool-2@example.net"): 1 for u in users.values()})
    # The header recipients stay as parsed: bob's copy still says To: alice.
    bobs = store.messages.summaries(users["bob"])
    assert bobs[0].recipients == ["alice@example.org"]


def test_envelope_is_the_authority(
    service: SpoolIngestService, store: MailStore, spool: Path, users: dict[str, int]
) -> None:
    write_pair(spool, make_raw(3, to="alice@example.org"), ["bob@example.org"])
    service.ingest()
    assert stored(store) == Counter({(users["bob"], "spool-3@example.net"): 1})


def test_case_insensitive_alias_and_two_users(
    service: SpoolIngestService, store: MailStore, spool: Path, users: dict[str, int]
) -> None:
    store.users.add_alias("alice", "Team@Example.org")
    store.users.add_alias("bob", "sales@example.org")
    write_pair(spool, make_raw(4), ["TEAM@EXAMPLE.ORG", "Sales@Example.Org"])
    result = service.ingest()
    assert result.saved == 2
    assert stored(store) == Counter(
        {(users["alice"], "spool-4@example.net"): 1, (users["bob"], "spool-4@example.net"): 1}
    )


def test_unknown_user_then_alias_then_reingest(
    service: SpoolIngestService, store: MailStore, spool: Path, users: dict[str, int]
) -> None:
    sid = write_pair(spool, make_raw(5), ["nobody@example.org"])
    result = service.ingest()
    assert (result.unmatched, result.saved) == (1, 0)
    assert all_files(spool)["unmatched"] == [f"{sid}.eml", f"{sid}.meta"]
    assert store.messages.count() == 0
    # Nothing changes on another pass: unmatched mail is not touched again.
    assert service.ingest().found == 0
    store.users.add_alias("carol", "nobody@example.org")
    moved, problems = service.reingest_unmatched()
    assert (moved, problems) == (1, [])
    assert all_files(spool)["inbox"] == [f"{sid}.eml", f"{sid}.meta"]
    result = service.ingest()
    assert result.saved == 1
    assert stored(store) == Counter({(users["carol"], "spool-5@example.net"): 1})
    assert all_files(spool)["unmatched"] == []


def test_one_message_one_query_per_batch(
    service: SpoolIngestService,
    store: MailStore,
    spool: Path,
    users: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for n in range(12):
        write_pair(spool, make_raw(n), ["alice@example.org", f"x{n}@example.org"])
    calls: list[int] = []
    original = store.users.user_ids_by_address

    def counting(addresses):  # type: ignore[no-untyped-def]
        addresses = list(addresses)
        calls.append(len(addresses))
        return original(addresses)

    monkeypatch.setattr(store.users, "user_ids_by_address", counting)
    service.batch_size = 5
    result = service.ingest()
    assert result.saved == 12 and result.batches == 3
    assert len(calls) == 3


# --- charsets, garbage, size, legacy files, save failures ------------------------------------


def test_8bit_latin1_and_gb2312(
    service: SpoolIngestService, store: MailStore, spool: Path, users: dict[str, int]
) -> None:
    latin = (
        b"From: bob@example.net\r\nTo: alice@example.org\r\nSubject: caf\xe9\r\n"
        b"Message-ID: <latin@example.net>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n"
        b"\r\ncaf\xe9 cr\xe8me br\xfbl\xe9e\r\n"
    )
    chinese = "你好，世界。邮件测试".encode("gb2312")
    gb = (
        b"From: bob@example.net\r\nTo: alice@example.org\r\nSubject: gb\r\n"
        b"Message-ID: <gb@example.net>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=gb2312\r\nContent-Transfer-Encoding: 8bit\r\n"
        b"\r\n" + chinese + b"\r\n"
    )
    write_pair(spool, latin, ["alice@example.org"])
    write_pair(spool, gb, ["alice@example.org"])
    result = service.ingest()
    assert (result.saved, result.failed) == (2, 0)
    assert all_files(spool)["inbox"] == []
    texts = {}
    for row in store.messages.summaries():
        texts[row.message_id] = store.messages.get_content(row.id)
    assert "café crème brûlée" in texts["latin@example.net"]["text_content"]
    assert texts["latin@example.net"]["raw_content"] == latin
    assert "你好，世界。邮件测试" in texts["gb@example.net"]["text_content"]


def test_garbage_goes_to_failed_with_error(
    service: SpoolIngestService, store: MailStore, spool: Path, users: dict[str, int]
) -> None:
    bad = write_pair(spool, b"\x00\x01\x02 this is not mail \xff\xfe", ["alice@example.org"])
    empty = write_pair(spool, b"", ["alice@example.org"])
    good = write_pair(spool, make_raw(7), ["alice@example.org"])
    result = service.ingest()
    assert (result.found, result.saved, result.failed) == (3, 1, 2)
    failed = all_files(spool)["failed"]
    for sid in (bad, empty):
        assert {f"{sid}.eml", f"{sid}.meta", f"{sid}.error.json"} <= set(failed)
    error = json.loads((spool / "failed" / f"{bad}.error.json").read_text())
    assert error["reason"] == "not_a_message"
    assert error["meta"]["id"] == bad and error["meta"]["rcpt_to"] == ["alice@example.org"]
    assert error["failed_at"] and error["detail"]
    assert json.loads((spool / "failed" / f"{empty}.error.json").read_text())["reason"] == "empty"
    assert f"{good}.eml" in all_files(spool)["processed"]


def test_oversize_goes_to_failed(
    store: MailStore, spool: Path, attachment_root: Path, users: dict[str, int]
) -> None:
    service = SpoolIngestService(store, spool, attachment_root, max_size=2000, fsync=False)
    big = write_pair(spool, make_raw(8, pad_to=5000), ["alice@example.org"])
    small = write_pair(spool, make_raw(9), ["alice@example.org"])
    result = service.ingest()
    assert (result.saved, result.failed) == (1, 1)
    error = json.loads((spool / "failed" / f"{big}.error.json").read_text())
    assert error["reason"] == "too_large"
    assert f"{small}.meta" in all_files(spool)["processed"]


def test_bad_meta_goes_to_failed(
    service: SpoolIngestService, spool: Path, users: dict[str, int]
) -> None:
    sid = write_pair(spool, make_raw(10), ["alice@example.org"])
    (spool / "inbox" / f"{sid}.meta").write_text("{not json")
    result = service.ingest()
    assert result.failed == 1
    assert json.loads((spool / "failed" / f"{sid}.error.json").read_text())["reason"] == "bad_meta"


def test_legacy_file_after_grace_routed_by_headers(
    service: SpoolIngestService, store: MailStore, spool: Path, users: dict[str, int]
) -> None:
    (spool / "inbox").mkdir(parents=True)
    raw = make_raw(12, to="someone@else.example", cc="Bob@Example.org").replace(
        b"Subject:", b"Delivered-To: carol@example.org\r\nSubject:"
    )
    legacy = spool / "inbox" / "1764000000.12345.eml"
    legacy.write_bytes(raw)
    fresh = spool / "inbox" / "1764000001.1.eml"
    fresh.write_bytes(make_raw(13))
    old = time.time() - 3600
    os.utime(legacy, (old, old))
    result = service.ingest()
    assert (result.found, result.saved) == (1, 2)
    assert stored(store) == Counter(
        {(users["bob"], "spool-12@example.net"): 1, (users["carol"], "spool-12@example.net"): 1}
    )
    files = all_files(spool)
    assert files["inbox"] == ["1764000001.1.eml"]  # still inside its grace period
    assert files["processed"] == ["1764000000.12345.eml", "1764000000.12345.meta"]
    meta = json.loads(next((spool / "processed").rglob("*.meta")).read_text())
    assert meta["legacy"] is True


def test_save_failure_goes_to_failed_and_retry(
    service: SpoolIngestService,
    store: MailStore,
    spool: Path,
    users: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mail_pipeline.errors import SaveError

    sid = write_pair(
        spool, make_raw(16, attachment=b"x" * 100), ["alice@example.org", "bob@example.org"]
    )
    original = service.saver.attachments.write

    def fail_for_bob(user_id: int, name: str, content: bytes, *, sync: bool = True) -> str:
        if user_id == users["bob"]:
            raise SaveError("disk full")
        return original(user_id, name, content, sync=sync)

    monkeypatch.setattr(service.saver.attachments, "write", fail_for_bob)
    result = service.ingest()
    assert (result.saved, result.failed) == (1, 1)
    error = json.loads((spool / "failed" / f"{sid}.error.json").read_text())
    assert error["reason"] == "save_failed" and "disk full" in error["detail"]
    assert error["detail"].startswith("bob: ")  # the user's name, not "user 2"
    monkeypatch.setattr(service.saver.attachments, "write", original)
    assert service.retry_failed() == (1, [])
    assert not (spool / "failed" / f"{sid}.error.json").exists()
    result = service.ingest()
    assert (result.saved, result.duplicates, result.failed) == (1, 1, 0)
    assert stored(store) == Counter(
        {(users["alice"], "spool-16@example.net"): 1, (users["bob"], "spool-16@example.net"): 1}
    )


# --- poison messages -------------------------------------------------------------------------


@pytest.mark.parametrize("form", sorted(NUL_FORMS))
def test_a_nul_attachment_in_a_batch_is_stored_cleaned_with_the_others(
    service: SpoolIngestService,
    store: MailStore,
    spool: Path,
    users: dict[str, int],
    form: str,
) -> None:
    """On PostgreSQL the NUL's ValueError sent the whole batch back, and every pass after."""
    good = [
        write_pair(spool, make_raw(n, attachment=b"ok"), ["alice@example.org"]) for n in (30, 31)
    ]
    poison = write_pair(spool, nul_message(1, form), ["alice@example.org", "bob@example.org"])
    result = service.ingest_as_task()
    assert (result.found, result.saved, result.failed) == (3, 4, 0), result.problems
    files = all_files(spool)
    assert files["inbox"] == [] and files["failed"] == []
    assert sorted(files["processed"]) == sorted(
        f"{sid}.{ext}" for sid in (*good, poison) for ext in ("eml", "meta")
    )
    assert store.tasks.get(result.task_id or "").status is TaskStatus.COMPLETED
    stored_poison = [m for m in store.messages.summaries() if m.subject == "poison 1"]
    assert len(stored_poison) == 2
    (attachment,) = store.messages.get_content(stored_poison[0].id)["attachments"]
    assert "\x00" not in f"{attachment['filename']}{attachment['content_id']}"


def test_an_unexpected_error_saving_one_message_quarantines_only_it(
    service: SpoolIngestService,
    store: MailStore,
    spool: Path,
    users: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Any error class, not only SQLAlchemy's: the message goes to failed/, the rest on."""
    good = [
        write_pair(spool, make_raw(n, attachment=b"ok"), ["alice@example.org"]) for n in (40, 41)
    ]
    bad = write_pair(spool, make_raw(42, attachment=b"bad"), ["alice@example.org"])
    original = service.saver.attachments.write

    def type_error_for_42(user_id: int, name: str, content: bytes, *, sync: bool = True) -> str:
        if name == "file-42.bin":
            raise TypeError("cannot take this one")
        return original(user_id, name, content, sync=sync)

    monkeypatch.setattr(service.saver.attachments, "write", type_error_for_42)
    result = service.ingest_as_task()
    assert (result.found, result.saved, result.failed, result.processed) == (3, 2, 1, 2)
    files = all_files(spool)
    assert files["failed"] == sorted([f"{bad}.eml", f"{bad}.error.json", f"{bad}.meta"])
    assert sorted(files["processed"]) == sorted(
        f"{sid}.{ext}" for sid in good for ext in ("eml", "meta")
    )
    error = json.loads((spool / "failed" / f"{bad}.error.json").read_text())
    assert error["reason"] == "save_failed" and "TypeError: cannot take this one" in error["detail"]
    assert store.tasks.get(result.task_id or "").status is TaskStatus.COMPLETED
