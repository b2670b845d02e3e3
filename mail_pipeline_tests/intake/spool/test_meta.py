"""The ``.meta`` record: reading, validation, leniency, serialisation (no database)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from mail_pipeline.errors import SpoolError
from mail_pipeline.intake.spool.meta import (
    META_MAX_BYTES,
    MetaError,
    SpoolMeta,
    processed_day,
)
from mail_pipeline_tests.fixtures.spool_files import make_raw, write_pair


def test_reads_what_haraka_writes(tmp_path: Path) -> None:
    when = datetime(2026, 11, 25, 23, 59, 59, 999000, tzinfo=UTC)
    sid = write_pair(tmp_path, make_raw(1), ["a@example.org", "B@Example.org"], received_at=when)
    meta = SpoolMeta.read(tmp_path / "inbox" / f"{sid}.meta")
    assert meta.id == sid and meta.rcpt_to == ("a@example.org", "B@Example.org")
    assert meta.received_at == when and meta.mail_from == "sender@example.net"
    assert meta.size == len(make_raw(1)) and meta.remote_ip == "127.0.0.1"
    assert meta.helo == "client.example.net" and meta.haraka_uuid
    assert meta.legacy is False
    assert meta.processed_day == "2026-11-25"


def test_round_trip_through_json() -> None:
    meta = SpoolMeta(
        id="x",
        rcpt_to=("a@example.org",),
        mail_from="",
        received_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        size=12,
        remote_ip="10.0.0.1",
        helo="client",
        haraka_uuid="U",
    )
    data = meta.to_json()
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert json.loads(data)["received_at"] == "2026-01-02T03:04:05Z"
    assert SpoolMeta.from_json(data) == meta
    legacy = SpoolMeta.for_legacy_file("old.1", datetime(2026, 1, 2, tzinfo=UTC), 7)
    assert json.loads(legacy.to_json())["legacy"] is True
    assert SpoolMeta.from_json(legacy.to_json()) == legacy


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "Expecting property name"),
        ("[1, 2]", "not a JSON object"),
        ('{"id": "x"}', "no rcpt_to list"),
        ('{"id": "x", "rcpt_to": "a@example.org"}', "no rcpt_to list"),
        ('{"id": "x", "rcpt_to": ["a@example.org", 3]}', "no rcpt_to list"),
    ],
)
def test_invalid_meta_is_a_meta_error(text: str, match: str) -> None:
    with pytest.raises(MetaError, match=match):
        SpoolMeta.from_json(text)


def test_a_legacy_meta_needs_no_envelope() -> None:
    assert SpoolMeta.from_json('{"id": "x", "legacy": true}').rcpt_to == ()
    assert SpoolMeta.from_json('{"id": "x"}', legacy=True).legacy is True


def test_informative_fields_of_the_wrong_type_read_as_missing() -> None:
    meta = SpoolMeta.from_json(
        json.dumps(
            {
                "id": 5,
                "rcpt_to": [],
                "received_at": "yesterday",
                "size": "12",
                "mail_from": None,
                "helo": ["x"],
                "remote_ip": 1,
                "haraka_uuid": True,
            }
        )
    )
    assert meta == SpoolMeta(id="", rcpt_to=())
    assert SpoolMeta.from_json('{"rcpt_to": [], "size": true}').size is None


def test_received_at_without_zone_is_utc() -> None:
    meta = SpoolMeta.from_json('{"rcpt_to": [], "received_at": "2026-11-25T10:00:00"}')
    assert meta.received_at == datetime(2026, 11, 25, 10, tzinfo=UTC)


def test_read_refuses_large_files_and_symlinks(tmp_path: Path) -> None:
    big = tmp_path / "big.meta"
    big.write_bytes(b" " * (META_MAX_BYTES + 1))
    with pytest.raises(MetaError, match="larger than 1 MiB"):
        SpoolMeta.read(big)
    good = tmp_path / "good.meta"
    good.write_text('{"rcpt_to": []}')
    os.symlink(good, tmp_path / "link.meta")
    with pytest.raises(SpoolError, match="symlink"):
        SpoolMeta.read(tmp_path / "link.meta")
    assert SpoolMeta.read_or_none(tmp_path / "link.meta") is None
    assert SpoolMeta.read_or_none(tmp_path / "missing.meta") is None
    assert SpoolMeta.read_or_none(good) == SpoolMeta(id="", rcpt_to=())


def test_processed_day() -> None:
    def day(text: str) -> str:
        return processed_day(SpoolMeta.from_json(json.dumps({"rcpt_to": [], "received_at": text})))

    assert day("2026-11-25T23:59:59.999Z") == "2026-11-25"
    assert day("2026-11-26T01:00:00+02:00") == "2026-11-25"
    assert len(processed_day(None)) == 10
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert day("not a time") == today
    east = datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert SpoolMeta(id="x", rcpt_to=(), received_at=east).processed_day == "2025-12-31"
