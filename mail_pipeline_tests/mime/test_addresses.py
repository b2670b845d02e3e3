"""Tests of mail_pipeline.mime.addresses: address lists split per entry, bad entries dropped."""

from __future__ import annotations

from mail_pipeline.mime import parse_message
from mail_pipeline.mime.addresses import address_list


def test_8bit_byte_before_a_quoted_display_name() -> None:
    # Found by the property tests: a cp1252 byte decoded to "€", then re-encoded as latin-1.
    raw = b'From:\x80"Doe, Jane" <Jane.Doe@Example.ORG>\r\nTo: b@example.com\r\n\r\ng\r\n'
    msg = parse_message(raw)
    assert msg.sender == "Jane.Doe@example.org"
    assert "Doe, Jane" in msg.sender_name


def test_one_bad_entry_drops_only_itself_with_a_note() -> None:
    notes: list[str] = []
    found = address_list(['a@Example.ORG, "not an address", B <b@x.org>'], "to", None, notes)
    assert found == [("a@example.org", ""), ("b@x.org", "B")]
    assert notes == ["to: dropped unparseable address '\"not an address\"'"]


def test_groups_quotes_comments_and_duplicates() -> None:
    notes: list[str] = []
    value = (
        'team: "Doe, Jane" <jane@x.org>, (c, d) bob@x.org;, JANE@X.ORG, '
        "=?utf-8?q?J=C3=B6?= <jo@x.org>"
    )
    found = address_list([value], "cc", None, notes)
    assert found == [("jane@x.org", "Doe, Jane"), ("bob@x.org", ""), ("jo@x.org", "Jö")]
    assert notes == []
