"""Tests of mail_pipeline.mime.structure: nesting caps, pathological nesting, and the stdlib
fallback when flanker's scanner gives up."""

from __future__ import annotations

import time

import pytest

from mail_pipeline.errors import MessageParseError
from mail_pipeline.mime import MAX_DEPTH, parse_message
from mail_pipeline_tests.data import corpus_tools


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
    raw = b"From: a@example.org\r\nContent-Type: multipart/mixed\r\n\r\n\xe9t\xe9 caf\xe9\r\n"
    msg = parse_message(raw)
    # Nine bytes are too few for chardet to be sure of anything; the guess is noted.
    assert msg.text.startswith("\u00e9t\u00e9 caf") or "does not fit" in " ".join(msg.notes)
    assert msg.text.endswith("\n") and len(msg.text) == 9
    assert any("without usable boundary" in note for note in msg.notes)
    assert any("charset (none) does not fit" in note for note in msg.notes)
