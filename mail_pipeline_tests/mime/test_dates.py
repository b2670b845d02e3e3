"""Tests of mail_pipeline.mime.dates: the Date field as an aware UTC datetime."""

from __future__ import annotations

from datetime import UTC, datetime

from mail_pipeline.mime.dates import parse_date


def test_parse_date() -> None:
    notes: list[str] = []
    assert parse_date("Tue, 24 Nov 2026 10:00:00 +0100", notes) == datetime(
        2026, 11, 24, 9, 0, tzinfo=UTC
    )
    assert parse_date("Tue, 24 Nov 2026 10:00:00 -0000", notes) == datetime(
        2026, 11, 24, 10, 0, tzinfo=UTC
    )
    assert parse_date(None, notes) is None
    assert notes == []


def test_unparseable_date_is_none_with_a_note() -> None:
    notes: list[str] = []
    assert parse_date("Mon, 99 Foo 99999 99:99:99 +9999", notes) is None
    assert parse_date("yesterday", notes) is None
    assert len(notes) == 2 and all(note.startswith("date: ") for note in notes)
