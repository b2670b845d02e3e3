"""The IMAP wire format: UID sets and the FETCH / RFC822.SIZE responses imaplib hands back."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from mail_pipeline.errors import ImapProtocolError
from mail_pipeline.intake.imap.wire import parse_fetch_response, parse_size_response, uid_set


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
