"""Claim folders: their owners, the stale-claim rule and recovery (no database)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from mail_pipeline.intake.spool.claims import ClaimOwner, hostname, new_claim_id
from mail_pipeline.intake.spool.layout import Spool
from mail_pipeline.intake.spool.meta import SpoolMeta, processed_day
from mail_pipeline.intake.spool.records import ClaimStats
from mail_pipeline.platform.process import process_start
from mail_pipeline_tests.fixtures.spool_files import make_raw, write_pair


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool").open()


def claim_name(pid: int, start: str | None = None, host: str | None = None) -> str:
    return f"{host or hostname()}+{pid}+{start or process_start(pid) or '0'}+abcd1234"


def test_claim_id_names_this_process() -> None:
    owner = ClaimOwner.parse(new_claim_id())
    assert owner is not None and owner.pid == os.getpid() and owner.host == hostname()
    assert ClaimOwner.parse("not-a-claim") is None


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
        [f"{i}.eml" for i in ids] + [f"{i}.meta" for i in ids]
    )


def test_recover_lone_meta_rejoins_its_eml(spool: Spool) -> None:
    # Killed between the two renames of a final move: the .eml is in processed/<day>/.
    sid = write_pair(spool.root, make_raw(1), ["a@example.org"])
    claim = spool.new_claim()
    (item,) = list(spool.iter_claims(claim, ClaimStats()))
    meta = SpoolMeta.read(item.meta)
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


def test_recover_leaves_links_in_the_claim_and_returns_the_rest(
    spool: Spool, tmp_path: Path
) -> None:
    sid = write_pair(spool.root, make_raw(1), ["a@example.org"])
    claim = spool.new_claim()
    (item,) = list(spool.iter_claims(claim, ClaimStats()))
    target = tmp_path / "target"
    target.write_bytes(b"not spool mail")
    os.symlink(target, claim / "evil.eml")
    os.symlink(target, claim / "evil.meta")
    returned, problems = spool.recover_claim(claim)
    assert returned == 1
    assert [(p.path, p.reason) for p in problems] == [(str(claim), "claim_not_empty")]
    assert sorted(os.listdir(spool.inbox)) == [f"{sid}.eml", f"{sid}.meta"]
    assert sorted(os.listdir(claim)) == ["evil.eml", "evil.meta"]
    assert target.read_bytes() == b"not spool mail"
    assert (spool.inbox / f"{sid}.eml").read_bytes() == make_raw(1) and not item.eml.exists()
