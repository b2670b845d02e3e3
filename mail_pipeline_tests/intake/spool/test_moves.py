"""Moves out of a claim and requeueing: never overwrite, never follow (no database)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mail_pipeline.intake.spool.layout import Spool
from mail_pipeline.intake.spool.records import Item
from mail_pipeline_tests.fixtures.spool_files import make_raw


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool").open()


def test_move_never_overwrites(spool: Spool) -> None:
    claim = spool.new_claim()
    for n in range(2):
        (claim / "legacy.eml").write_bytes(make_raw(n))
        (claim / "legacy.meta").write_text("{}")
        spool.move_pair(
            Item("legacy", claim / "legacy.eml", claim / "legacy.meta"), spool.unmatched
        )
    assert sorted(os.listdir(spool.unmatched)) == [
        "legacy.eml",
        "legacy.meta",
        "legacy~1.eml",
        "legacy~1.meta",
    ]
    assert (spool.unmatched / "legacy.eml").read_bytes() == make_raw(0)


def test_requeue_skips_symlinks_and_removes_error(spool: Spool, tmp_path: Path) -> None:
    sid = "11111111-2222-4333-8444-555555555555"
    (spool.failed / f"{sid}.eml").write_bytes(make_raw(1))
    (spool.failed / f"{sid}.meta").write_text("{}")
    (spool.failed / f"{sid}.error.json").write_text("{}")
    target = tmp_path / "t.meta"
    target.write_text("{}")
    os.symlink(target, spool.failed / "evil.meta")
    moved, problems = spool.requeue(spool.failed)
    assert moved == 1 and [p.reason for p in problems] == ["symlink"]
    assert sorted(os.listdir(spool.inbox)) == [f"{sid}.eml", f"{sid}.meta"]
    assert os.listdir(spool.failed) == ["evil.meta"]
