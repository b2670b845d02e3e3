"""Claiming from the inbox: racing claimers, orphan metas (no database)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mail_pipeline.intake.spool import files
from mail_pipeline.intake.spool.layout import Spool
from mail_pipeline.intake.spool.records import ClaimStats, Item
from mail_pipeline_tests.fixtures.spool_files import make_raw, write_pair


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool").open()


def test_two_claimers_never_take_the_same_pair(spool: Spool) -> None:
    ids = {write_pair(spool.root, make_raw(n), ["a@example.org"]) for n in range(50)}
    first, second = spool.new_claim(), spool.new_claim()
    stats = ClaimStats()
    a = spool.iter_claims(first, stats)
    b = spool.iter_claims(second, stats)
    taken: list[Item] = []
    # Interleave the two scans: both see every entry, only one rename of each .meta wins.
    for x, y in zip(a, b, strict=False):
        taken += [x, y]
    taken += list(a) + list(b)
    stems = [item.stem for item in taken]
    assert sorted(stems) == sorted(ids) and len(stems) == len(set(stems))
    for item in taken:
        assert item.eml.is_file() and item.meta.is_file() and item.eml.parent == item.meta.parent
    assert os.listdir(spool.inbox) == []


def test_orphan_meta_goes_to_failed(spool: Spool) -> None:
    sid = write_pair(spool.root, make_raw(1), ["a@example.org"])
    (spool.inbox / f"{sid}.eml").unlink()
    stats = ClaimStats()
    assert list(spool.iter_claims(spool.new_claim(), stats)) == []
    assert [p.reason for p in stats.orphans] == ["missing_eml"]
    assert sorted(os.listdir(spool.failed)) == [f"{sid}.error.json", f"{sid}.meta"]


def test_claim_and_move_system_calls_per_pair(
    spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim is one lstat and two renames; a final move two no-replace renames, no stat."""
    for n in range(20):
        write_pair(spool.root, make_raw(n), ["a@example.org"])
    claim = spool.new_claim()
    day = spool.processed / "2026-12-03"
    day.mkdir()
    calls: Counter[str] = Counter()

    def counted(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(*args, **kwargs)

        return call

    assert files._renameat2 is not None, "Linux's libc has renameat2"
    for name in ("lstat", "stat", "rename"):
        monkeypatch.setattr(os, name, counted(name, getattr(os, name)))
    monkeypatch.setattr(files, "_renameat2", counted("renameat2", files._renameat2))
    items = list(spool.iter_claims(claim, ClaimStats()))
    assert len(items) == 20
    assert calls == Counter({"lstat": 20, "rename": 40})
    calls.clear()
    for item in items:
        spool.move_pair(item, day)
    assert calls == Counter({"renameat2": 40})
    assert len(os.listdir(day)) == 40 and os.listdir(claim) == []
