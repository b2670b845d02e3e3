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


def test_move_with_a_name_taken_by_a_lone_meta_keeps_the_pair_together(spool: Spool) -> None:
    claim = spool.new_claim()
    (spool.unmatched / "legacy.meta").write_text("theirs")  # no .eml of that name
    (spool.unmatched / "legacy~1.eml").write_bytes(b"theirs")  # nor a .meta of this one
    (claim / "legacy.eml").write_bytes(make_raw(1))
    (claim / "legacy.meta").write_text("ours")
    moved = spool.move_pair(
        Item("legacy", claim / "legacy.eml", claim / "legacy.meta"), spool.unmatched
    )
    assert moved == spool.unmatched / "legacy~2.eml"
    assert sorted(os.listdir(spool.unmatched)) == [
        "legacy.meta",
        "legacy~1.eml",
        "legacy~2.eml",
        "legacy~2.meta",
    ]
    assert (spool.unmatched / "legacy~2.meta").read_text() == "ours"
    assert (spool.unmatched / "legacy~2.eml").read_bytes() == make_raw(1)
    assert (spool.unmatched / "legacy.meta").read_text() == "theirs"
    assert (spool.unmatched / "legacy~1.eml").read_bytes() == b"theirs"
    assert os.listdir(claim) == []


def test_move_creates_the_day_folder_and_reports_a_lost_claim(spool: Spool) -> None:
    claim = spool.new_claim()
    (claim / "a.eml").write_bytes(make_raw(1))
    (claim / "a.meta").write_text("{}")
    day = spool.processed / "2026-12-03"
    assert spool.move_pair(Item("a", claim / "a.eml", claim / "a.meta"), day) == day / "a.eml"
    assert sorted(os.listdir(day)) == ["a.eml", "a.meta"]
    with pytest.raises(FileNotFoundError):  # the files were taken over: nothing moves
        spool.move_pair(Item("b", claim / "b.eml", claim / "b.meta"), spool.processed / "x")
    assert os.listdir(spool.processed / "x") == []  # ENOENT is ambiguous: made, then retried
    assert sorted(os.listdir(day)) == ["a.eml", "a.meta"]
