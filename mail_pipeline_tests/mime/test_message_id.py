"""Tests of mail_pipeline.mime.message_id: the identifier without brackets, or None."""

from __future__ import annotations

import pytest

from mail_pipeline.mime.message_id import message_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<abc@example.org>", "abc@example.org"),
        ("  < abc@example.org >  (comment)", "abc@example.org"),
        ("abc@example.org", "abc@example.org"),
        ("<unclosed@example.org", "unclosed@example.org"),
        ("<caf\xc3\xa9@example.org>", "café@example.org"),  # UTF-8 bytes as latin-1
        ("<caf\xe9@example.org>", None),  # not UTF-8
        ("<a b@example.org>", None),
        ("<>", None),
        ("<" + "x" * 901 + ">", None),
        (None, None),
    ],
)
def test_message_id(value: str | None, expected: str | None) -> None:
    assert message_id(value) == expected
