"""Tests of mail_pipeline.mime.header_block: fields, folding, and where the body starts."""

from __future__ import annotations

from mail_pipeline.mime.header_block import read_header_block


def test_fields_are_unfolded_lowercased_and_in_order() -> None:
    s = "From x@y Mon\r\nSubject: a\r\n\tb\r\nTo: t\r\nSubject: second\r\n\r\nbody"
    fields, body_start = read_header_block(s, 0, len(s))
    assert fields == [("subject", "a\tb"), ("to", "t"), ("subject", "second")]
    assert s[body_start:] == "body"


def test_a_non_header_line_starts_the_body() -> None:
    s = "Subject: a\nthis is body text\nmore"
    fields, body_start = read_header_block(s, 0, len(s))
    assert fields == [("subject", "a")]
    assert s[body_start:] == "this is body text\nmore"


def test_truncated_message_and_end_offset() -> None:
    s = "Subject: cut off"
    assert read_header_block(s, 0, len(s)) == ([("subject", "cut off")], len(s))
    s = "xxSubject: a\r\n\r\nbody--next"
    fields, body_start = read_header_block(s, 2, len(s) - 6)
    assert fields == [("subject", "a")] and s[body_start : len(s) - 6] == "body"
