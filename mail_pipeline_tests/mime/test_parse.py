"""Tests of mail_pipeline.parser: the corpus, field by field, and focused behaviour tests.

The corpus (``data/corpus/NAME.eml`` + ``NAME.expected.json``) was written by hand: every
expected value was derived from how the message was built (the attachment hashes from the
original bytes before they were encoded), not from the parser's output. Large cases (a 10 MB
attachment, deep nesting) are generated deterministically at test time by
``data/corpus_tools.py`` instead of being committed.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mail_pipeline.errors import MessageParseError, MessageTooLargeError
from mail_pipeline.mime import MAX_DEPTH, ParsedMessage, html_to_text, parse_message
from mail_pipeline_tests.data import corpus_tools

CORPUS = Path(__file__).parent.parent / "data" / "corpus"
CASES = sorted(p.name[: -len(".eml")] for p in CORPUS.glob("*.eml"))
REQUIRED = ("message_id", "subject", "sender", "sender_name", "to", "cc", "date", "attachments")


def _load(name: str) -> tuple[bytes, dict[str, Any]]:
    raw = (CORPUS / f"{name}.eml").read_bytes()
    expected = json.loads((CORPUS / f"{name}.expected.json").read_text(encoding="utf-8"))
    return raw, expected


def test_corpus_is_big_enough_and_complete() -> None:
    assert len(CASES) >= 40
    for name in CASES:
        assert (CORPUS / f"{name}.expected.json").exists(), name
    assert {p.name[: -len(".expected.json")] for p in CORPUS.glob("*.expected.json")} == set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_corpus_message(name: str) -> None:
    raw, expected = _load(name)
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


# --- charsets --------------------------------------------------------------------------------


def _text_message(body: bytes, charset: str | None, cte: str = "8bit") -> bytes:
    ctype = "text/plain" + (f"; charset={charset}" if charset else "")
    head = (
        "From: a@example.org\r\nTo: b@example.org\r\nSubject: t\r\n"
        f"Content-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    )
    return head.encode("ascii") + body


@pytest.mark.parametrize(
    ("text", "charset"),
    [
        ("café crème brûlée", "iso-8859-1"),
        ("café crème “quoted”", "windows-1252"),
        ("Zażółć gęślą jaźń", "iso-8859-2"),
        ("Привет, мир", "koi8-r"),
        ("Привет, мир", "windows-1251"),
        ("日本語のメール", "shift_jis"),
        ("日本語のメール", "euc-jp"),
        ("한국어 메일", "euc-kr"),
        ("中文邮件", "gb2312"),
        ("繁體中文郵件", "big5"),
        ("emoji 😀 and ümlaut", "utf-8"),
    ],
)
def test_correctly_labelled_8bit_text_is_decoded_with_its_charset(text: str, charset: str) -> None:
    msg = parse_message(_text_message(text.encode(charset), charset))
    assert msg.text == text
    assert msg.notes == ()


def test_gbk_text_labelled_gb2312_is_decoded_as_gb18030_with_a_note() -> None:
    text = "朱镕基"  # 镕 is GBK, not GB2312
    with pytest.raises(UnicodeDecodeError):
        text.encode("gbk").decode("gb2312")
    msg = parse_message(_text_message(text.encode("gbk"), "gb2312"))
    assert msg.text == text
    assert any("gb18030" in note for note in msg.notes)


def test_unknown_charset_label_falls_back_with_a_note() -> None:
    msg = parse_message(_text_message("grüß".encode(), "x-no-such-charset"))
    assert msg.text == "grüß"
    assert any("unknown charset" in note for note in msg.notes)


def test_undecodable_bytes_give_replacement_text_and_a_note() -> None:
    msg = parse_message(_text_message(b"\xff\xfe\xfa broken \x81\x8d", "utf-8"))
    assert "broken" in msg.text
    assert any("does not fit" in note for note in msg.notes)


def test_utf16_body_is_not_taken_for_ascii() -> None:
    text = "hello wörld"
    msg = parse_message(_text_message(text.encode("utf-16"), "utf-16", cte="binary"))
    assert msg.text == text


def test_8bit_parse_is_right_where_flanker_alone_is_wrong() -> None:
    raw = corpus_tools.text_message(eight_bit=True)
    msg = parse_message(raw)
    assert "café crème brûlée" in msg.text
    assert "cafÚ" not in msg.text


# --- html_to_text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("a<br>b<br/>c", "a\nb\nc"),
        ("a<br><br>b", "a\n\nb"),
        ("<div>x</div><div>y</div>", "x\ny"),
        ("Fish &amp; chips &lt;3 &eacute;t&#233; &#x263A;", "Fish & chips <3 été ☺"),
        ("<style>p{color:red}</style><script>alert(1)</script>visible", "visible"),
        ("<head><title>T</title></head><body>body</body>", "body"),
        ("  lots   of\n\n white\tspace  ", "lots of white space"),
        ("<ul><li>one</li><li>two</li></ul>", "- one\n- two"),
        ("<pre>a  b\n  c</pre>", "a  b\n  c"),
        ("<table><tr><td>1</td><td>2</td></tr><tr><td>3</td></tr></table>", "1 2\n3"),
        ("<p>unclosed <b>tags", "unclosed tags"),
        ("", ""),
        ("x < y", "x < y"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


# --- content hash --------------------------------------------------------------------------


def test_content_hash_ignores_trace_headers_and_line_endings() -> None:
    raw, _ = _load("plain_crlf")
    lf, _ = _load("plain_lf")
    traced = (
        b"Return-Path: <alice@example.org>\r\n"
        b"Received: from mx.example.org (mx.example.org [192.0.2.1])\r\n"
        b"\tby mail.example.com; Tue, 24 Nov 2026 10:00:01 +0000\r\n"
        b"Delivered-To: bob@example.com\r\nX-Original-To: bob@example.com\r\n" + raw
    )
    imap_style = raw + b"\r\n"  # an extra trailing line break is not a different message
    mbox_style = b"From alice@example.org Tue Nov 24 10:00:00 2026\nStatus: RO\nX-UID: 17\n" + lf
    hashes = {parse_message(m).content_hash for m in (raw, lf, traced, imap_style, mbox_style)}
    assert len(hashes) == 1


def test_content_hash_sees_real_differences() -> None:
    raw, _ = _load("plain_crlf")
    base = parse_message(raw).content_hash
    assert parse_message(raw.replace(b"noon", b"one")).content_hash != base
    assert parse_message(raw.replace(b"Lunch on", b"Dinner on")).content_hash != base
    # a non-trace header counts
    assert parse_message(b"X-Spam-Score: 1\r\n" + raw).content_hash != base


def test_content_hash_is_sha256_of_the_normalised_message() -> None:
    raw = b"Received: x\r\nSubject: s\r\nFrom: a@b.org\r\n\r\nbody\r\n"
    expected = hashlib.sha256(b"Subject: s\nFrom: a@b.org\n\nbody\n").hexdigest()
    assert parse_message(raw).content_hash == expected


# --- size limits and large inputs ------------------------------------------------------------


def test_max_size() -> None:
    raw, _ = _load("plain_crlf")
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


def test_nesting_deeper_than_the_cap_is_kept_as_one_part() -> None:
    msg = parse_message(corpus_tools.nested_message(MAX_DEPTH + 10))
    assert msg.text == ""
    assert len(msg.attachments) == 1
    assert msg.attachments[0].content_type == "multipart/mixed"
    assert b"innermost" in msg.attachments[0].content
    assert any("nested deeper" in note for note in msg.notes)


def test_moderate_nesting_is_read_fully() -> None:
    msg = parse_message(corpus_tools.nested_message(10))
    assert msg.text == "innermost"
    assert msg.attachments == ()


@pytest.mark.parametrize("depth", [400, 2000])
def test_pathological_nesting_neither_crashes_nor_hangs(depth: int) -> None:
    started = time.perf_counter()
    try:
        msg = parse_message(corpus_tools.nested_message(depth))
    except MessageParseError as error:
        assert error.reason == "malformed_mime"
    else:
        assert msg.subject == f"nested {depth}"
    assert time.perf_counter() - started < 10


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
    raw, _ = _load("plain_crlf")
    assert parse_message(bytearray(raw)).subject == "Lunch on Friday?"
    assert parse_message(memoryview(raw)).raw == raw


def test_results_are_frozen() -> None:
    raw, _ = _load("plain_crlf")
    msg = parse_message(raw)
    with pytest.raises(AttributeError):
        msg.subject = "changed"  # type: ignore[misc]
    assert "raw" not in repr(msg)


def test_stdlib_fallback_keeps_8bit_bytes_and_decodes_with_the_declared_charset() -> None:
    # More than flanker's 5,000 tokens: the stdlib parser reads the structure instead.
    part = b"--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9 cr\xe8me\r\n"
    raw = (
        b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        + part * 3000
        + b"--b--\r\n"
    )
    msg = parse_message(raw)
    assert any("stdlib" in note for note in msg.notes)
    assert msg.text == "\n".join(["café crème"] * 3000)


def test_multipart_without_boundary_with_unlabelled_8bit_text() -> None:
    raw = (
        b"From: a@example.org\r\nContent-Type: multipart/mixed\r\n\r\n"
        b"\xe9t\xe9 caf\xe9\r\n"
    )
    msg = parse_message(raw)
    # Nine bytes are too few for chardet to be sure of anything; the guess is noted.
    assert msg.text.startswith("\u00e9t\u00e9 caf") or "does not fit" in " ".join(msg.notes)
    assert msg.text.endswith("\n") and len(msg.text) == 9
    assert any("without usable boundary" in note for note in msg.notes)
    assert any("charset (none) does not fit" in note for note in msg.notes)


def test_8bit_byte_before_a_quoted_display_name() -> None:
    # Found by the property tests: a cp1252 byte decoded to "€", then re-encoded as latin-1.
    raw = b'From:\x80"Doe, Jane" <Jane.Doe@Example.ORG>\r\nTo: b@example.com\r\n\r\ng\r\n'
    msg = parse_message(raw)
    assert msg.sender == "Jane.Doe@example.org"
    assert "Doe, Jane" in msg.sender_name
