"""Spooling a message as the Haraka plugin does (no database)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mail_pipeline.errors import SpoolError
from mail_pipeline.intake.spool.meta import SpoolMeta
from mail_pipeline.intake.spool.writer import spool_message
from mail_pipeline_tests.fixtures.spool_files import make_raw


def test_writes_a_ready_pair_and_no_temp_file(tmp_path: Path) -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    sid = spool_message(
        tmp_path, make_raw(1), ["a@example.org"], mail_from="s@example.net", received_at=when
    )
    assert sorted(os.listdir(tmp_path / "inbox")) == [f"{sid}.eml", f"{sid}.meta"]
    assert os.listdir(tmp_path / "tmp") == []
    assert (tmp_path / "inbox" / f"{sid}.eml").read_bytes() == make_raw(1)
    meta = SpoolMeta.read(tmp_path / "inbox" / f"{sid}.meta")
    assert (meta.id, meta.rcpt_to, meta.mail_from) == (sid, ("a@example.org",), "s@example.net")
    assert (meta.received_at, meta.size) == (when, len(make_raw(1)))


def test_refuses_bad_input_and_reports_an_unusable_spool(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="recipient"):
        spool_message(tmp_path, make_raw(1), [])
    with pytest.raises(ValueError, match="empty"):
        spool_message(tmp_path, b"", ["a@example.org"])
    (tmp_path / "file").write_text("")
    with pytest.raises(SpoolError, match="cannot write"):
        spool_message(tmp_path / "file", make_raw(1), ["a@example.org"])
