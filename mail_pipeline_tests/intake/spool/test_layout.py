"""The spool's file protocol: layout, claims, recovery, moves, requeue, status (no database)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from mail_pipeline.errors import SpoolError
from mail_pipeline.intake.spool.layout import (
    ClaimOwner,
    ClaimStats,
    Item,
    Spool,
    _process_start,
    hostname,
    new_claim_id,
    processed_day,
)
from mail_pipeline_tests.fixtures.spool_files import all_files, make_raw, write_pair


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool").open()


def claim_name(pid: int, start: str | None = None, host: str | None = None) -> str:
    return f"{host or hostname()}+{pid}+{start or _process_start(pid) or '0'}+abcd1234"


def test_open_creates_folders_and_refuses_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "s"
    Spool(root).open()
    assert sorted(os.listdir(root)) == sorted(
        ["inbox", "processed", "failed", "unmatched", "tmp", "claims"])
    other = tmp_path / "s2"
    other.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, other / "inbox")
    with pytest.raises(SpoolError, match="symlink"):
        Spool(other).open()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Spool("/tmp/x", lease_seconds=0)
    with pytest.raises(ValueError):
        Spool("/tmp/x", legacy_grace_seconds=-1)


def test_claim_id_names_this_process() -> None:
    owner = ClaimOwner.parse(new_claim_id())
    assert owner is not None and owner.pid == os.getpid() and owner.host == hostname()
    assert ClaimOwner.parse("not-a-claim") is None


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


def test_stale_claim_rules(spool: Spool, tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        live = spool.claims / claim_name(sleeper.pid)
        live.mkdir()
        foreign = spool.claims / claim_name(sleeper.pid, host="other-host")
        foreign.mkdir()
        recycled = spool.claims / claim_name(sleeper.pid, start="12345")
        recycled.mkdir()
        assert not spool.is_stale_claim(live)
        assert not spool.is_stale_claim(foreign)  # another host: only the lease counts
        assert spool.is_stale_claim(recycled)  # same pid, different start time: gone
        old = time.time() - spool.lease_seconds - 5
        os.utime(foreign, (old, old))
        assert spool.is_stale_claim(foreign)
        spool.heartbeat(foreign)
        assert not spool.is_stale_claim(foreign)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert spool.is_stale_claim(live)  # its owner is gone now
    assert spool.stale_claims() == sorted([live, recycled])


def test_recover_returns_pairs_meta_last(spool: Spool) -> None:
    ids = [write_pair(spool.root, make_raw(n), ["a@example.org"]) for n in range(3)]
    claim = spool.new_claim()
    items = list(spool.iter_claims(claim, ClaimStats()))
    assert len(items) == 3
    (claim / f"{ids[0]}.meta.tmp").write_text("half")  # a half-written synthesised meta
    returned, problems = spool.recover_claim(claim)
    assert (returned, problems) == (3, [])
    assert not claim.exists()
    assert sorted(os.listdir(spool.inbox)) == sorted(
        [f"{i}.eml" for i in ids] + [f"{i}.meta" for i in ids])


def test_recover_lone_meta_rejoins_its_eml(spool: Spool) -> None:
    # Killed between the two renames of a final move: the .eml is in processed/<day>/.
    sid = write_pair(spool.root, make_raw(1), ["a@example.org"])
    claim = spool.new_claim()
    (item,) = list(spool.iter_claims(claim, ClaimStats()))
    meta = json.loads(item.meta.read_text())
    day = spool.processed / processed_day(meta)
    day.mkdir()
    os.rename(item.eml, day / f"{sid}.eml")
    _returned, problems = spool.recover_claim(claim)
    assert [p.reason for p in problems] == ["meta_rejoined"]
    assert sorted(os.listdir(day)) == [f"{sid}.eml", f"{sid}.meta"]
    # Killed between the two renames of a claim: the .eml is still in the inbox.
    sid2 = write_pair(spool.root, make_raw(2), ["a@example.org"])
    claim = spool.new_claim()
    os.rename(spool.inbox / f"{sid2}.meta", claim / f"{sid2}.meta")
    assert spool.recover_claim(claim) == (1, [])
    assert sorted(os.listdir(spool.inbox)) == [f"{sid2}.eml", f"{sid2}.meta"]


def test_move_never_overwrites(spool: Spool) -> None:
    claim = spool.new_claim()
    for n in range(2):
        (claim / "legacy.eml").write_bytes(make_raw(n))
        (claim / "legacy.meta").write_text("{}")
        spool.move_pair(Item("legacy", claim / "legacy.eml", claim / "legacy.meta"),
                        spool.unmatched)
    assert sorted(os.listdir(spool.unmatched)) == [
        "legacy.eml", "legacy.meta", "legacy~1.eml", "legacy~1.meta"]
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


def test_status(spool: Spool) -> None:
    write_pair(spool.root, make_raw(1), ["a@example.org"])
    waiting = write_pair(spool.root, make_raw(2), ["a@example.org"], meta=False)
    old = time.time() - 7200
    os.utime(spool.inbox / f"{waiting}.eml", (old, old))
    (spool.processed / "2026-11-25").mkdir()
    (spool.processed / "2026-11-25" / "x.meta").write_text("{}")
    (spool.claims / claim_name(999999, start="1")).mkdir()
    status = spool.status()
    assert (status.inbox_ready, status.inbox_waiting, status.processed) == (1, 1, 1)
    assert (status.failed, status.unmatched, status.claims) == (0, 0, 1)
    assert status.oldest_inbox_age_seconds is not None
    assert status.oldest_inbox_age_seconds >= 7000
    assert status.stale_eml_without_meta == [f"{waiting}.eml"]
    assert len(status.stale_claims) == 1
    assert json.dumps(status.as_dict())


def test_processed_day() -> None:
    assert processed_day({"received_at": "2026-11-25T23:59:59.999Z"}) == "2026-11-25"
    assert processed_day({"received_at": "2026-11-26T01:00:00+02:00"}) == "2026-11-25"
    assert len(processed_day(None)) == 10


def test_all_files_helper_is_complete(spool: Spool) -> None:
    assert set(all_files(spool.root)) == {"inbox", "failed", "unmatched", "tmp", "processed",
                                          "claims"}
