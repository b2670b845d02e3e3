"""Tests of mail_pipeline.mime.parse: the corpus, field by field, the entry point's contract,
and property tests (any byte sequence gives a ParsedMessage or a MessageParseError, quickly).

The corpus (``data/corpus/NAME.eml`` + ``NAME.expected.json``) was written by hand: every
expected value was derived from how the message was built (the attachment hashes from the
original bytes before they were encoded), not from the parser's output. Large cases (a 10 MB
attachment, deep nesting) are generated deterministically at test time by
``data/corpus_tools.py`` instead of being committed.

Property inputs are arbitrary bytes and mutations of the corpus messages. A
MessageParseError whose detail starts with "unexpected" is the parser's last-resort wrapper
around a bug, so it fails the test too.
"""

from __future__ import annotations

import hashlib
import re
import time
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mail_pipeline.mime.parse as parse_module
from mail_pipeline.errors import MessageParseError, MessageTooLargeError
from mail_pipeline.mime import ParsedMessage, parse_message
from mail_pipeline.mime.header_block import read_header_block
from mail_pipeline.mime.parse import _header_text
from mail_pipeline_tests.data import corpus_tools
from mail_pipeline_tests.data.corpus_tools import CORPUS, big_attachment_message, load_case
from mail_pipeline_tests.mime.mutations import mutated

CASES = sorted(p.name[: -len(".eml")] for p in CORPUS.glob("*.eml"))
REQUIRED = ("message_id", "subject", "sender", "sender_name", "to", "cc", "date", "attachments")
PER_EXAMPLE_SECONDS = 2.0

COMMON = settings(
    max_examples=300,
    deadline=PER_EXAMPLE_SECONDS * 1000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_corpus_is_big_enough_and_complete() -> None:
    assert len(CASES) >= 40
    for name in CASES:
        assert (CORPUS / f"{name}.expected.json").exists(), name
    assert {p.name[: -len(".expected.json")] for p in CORPUS.glob("*.expected.json")} == set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_corpus_message(name: str) -> None:
    raw, expected = load_case(name)
    if "error" in expected:
        with pytest.raises(MessageParseError) as info:
            parse_message(raw)
        assert info.value.reason == expected["error"]
        return
    for key in REQUIRED:
        assert key in expected, f"{name}.expected.json lacks {key}"
    msg = parse_message(raw)
    assert isinstance(msg, ParsedMessage)
    assert msg.message_id == expected["message_id"]
    assert msg.subject == expected["subject"]
    assert msg.sender == expected["sender"]
    assert msg.sender_name == expected["sender_name"]
    assert list(msg.to) == expected["to"]
    assert list(msg.cc) == expected["cc"]
    assert list(msg.bcc) == expected.get("bcc", [])
    if expected["date"] is None:
        assert msg.date is None
    else:
        assert msg.date == datetime.fromisoformat(expected["date"])
        assert msg.date is not None and msg.date.tzinfo is not None
        assert msg.date.utcoffset() == UTC.utcoffset(None)
    if "text" in expected:
        assert msg.text == expected["text"]
    for excerpt in expected.get("text_contains", []):
        assert excerpt in msg.text
    if "html" in expected:
        assert msg.html == expected["html"]
    for excerpt in expected.get("html_contains", []):
        assert excerpt in msg.html
    got = [
        {
            "filename": a.filename,
            "content_type": a.content_type,
            "size": a.size,
            "sha256": a.sha256,
            "content_id": a.content_id,
            "inline": a.inline,
        }
        for a in msg.attachments
    ]
    assert got == expected["attachments"]
    for note in expected.get("notes_contain", []):
        assert any(note in n for n in msg.notes), (note, msg.notes)
    for word in expected.get("notes_absent", []):
        assert not any(word in n for n in msg.notes), (word, msg.notes)
    assert msg.size == len(raw)
    assert msg.raw == raw
    assert len(msg.content_hash) == 64


# --- size limits and large inputs ------------------------------------------------------------


def test_max_size() -> None:
    raw, _ = load_case("plain_crlf")
    assert parse_message(raw, max_size=len(raw)).size == len(raw)
    with pytest.raises(MessageTooLargeError) as info:
        parse_message(raw, max_size=len(raw) - 1)
    assert info.value.reason == "too_large"
    assert info.value.size == len(raw) and info.value.limit == len(raw) - 1
    assert isinstance(info.value, MessageParseError)


def test_ten_megabyte_attachment() -> None:
    # Generated at test time (deterministic) to keep the repository small.
    raw, content = corpus_tools.big_attachment_message(10 * 1024 * 1024)
    started = time.perf_counter()
    msg = parse_message(raw)
    elapsed = time.perf_counter() - started
    assert msg.text == "See attached."
    assert len(msg.attachments) == 1
    attachment = msg.attachments[0]
    assert attachment.filename == "blob.bin"
    assert attachment.size == len(content) == 10 * 1024 * 1024
    assert attachment.sha256 == hashlib.sha256(content).hexdigest()
    assert msg.notes == ()
    assert elapsed < 5, elapsed


def test_huge_header_line_is_fast() -> None:
    raw = b"From: a@example.org\r\nSubject: " + b"x" * 5_000_000 + b"\r\n\r\nbody\r\n"
    started = time.perf_counter()
    msg = parse_message(raw)
    assert len(msg.subject) == 5_000_000
    assert time.perf_counter() - started < 5


def test_non_bytes_input_is_a_parse_error() -> None:
    with pytest.raises(MessageParseError):
        parse_message("From: a@example.org\r\n\r\nx")  # type: ignore[arg-type]


def test_bytearray_and_memoryview_are_accepted() -> None:
    raw, _ = load_case("plain_crlf")
    assert parse_message(bytearray(raw)).subject == "Lunch on Friday?"
    assert parse_message(memoryview(raw)).raw == raw


# --- properties ------------------------------------------------------------------------------


def _check(raw: bytes) -> ParsedMessage | None:
    started = time.perf_counter()
    try:
        result = parse_message(raw)
    except MessageParseError as error:
        assert error.reason in {"empty", "not_a_message", "malformed_mime"}, error
        assert not error.detail.startswith("unexpected"), error
        return None
    finally:
        assert time.perf_counter() - started < PER_EXAMPLE_SECONDS
    assert isinstance(result, ParsedMessage)
    assert result.size == len(raw) and result.raw == raw
    assert isinstance(result.subject, str) and isinstance(result.text, str)
    assert all(isinstance(a, str) and "@" in a for a in result.to + result.cc + result.bcc)
    assert result.date is None or result.date.tzinfo is not None
    assert re.fullmatch(r"[0-9a-f]{64}", result.content_hash)
    for attachment in result.attachments:
        assert isinstance(attachment.content, bytes)
        assert attachment.size == len(attachment.content)
        assert attachment.sha256 == hashlib.sha256(attachment.content).hexdigest()
        assert b"".join(attachment.chunks()) == attachment.content
        assert "/" in attachment.content_type
    if result.message_id is not None:
        assert result.message_id and not any(c.isspace() for c in result.message_id)
    return result


@COMMON
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(raw: bytes) -> None:
    _check(raw)


@COMMON
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_after_a_header(raw: bytes) -> None:
    # Past the "is it a message" gate, so the structure code sees the garbage.
    _check(b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + raw)


@COMMON
@given(mutated())
def test_mutated_corpus_messages(raw: bytes) -> None:
    _check(raw)


@COMMON
@given(st.one_of(mutated(), st.binary(max_size=512)))
def test_the_header_block_is_read_from_the_header_text_alone(raw: bytes) -> None:
    whole = raw.decode("latin-1")
    head = _header_text(raw)
    assert whole.startswith(head)
    assert read_header_block(head, 0, len(head)) == read_header_block(whole, 0, len(whole))


def test_a_big_message_gives_its_freed_memory_back(monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[bool] = []
    monkeypatch.setattr(parse_module, "release_free_memory", lambda: released.append(True))
    raw, content = big_attachment_message(parse_module.RELEASE_ABOVE)
    assert parse_message(raw).attachments[0].content == content
    assert released == [True]
    parse_message(big_attachment_message(1000)[0])
    assert released == [True]  # not after a small one
