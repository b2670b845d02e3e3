"""The spool status snapshot (no database)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from mail_pipeline.intake.spool.claims import hostname
from mail_pipeline.intake.spool.layout import Spool
from mail_pipeline.platform.process import process_start
from mail_pipeline_tests.fixtures.spool_files import make_raw, write_pair


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool").open()


def claim_name(pid: int, start: str | None = None, host: str | None = None) -> str:
    return f"{host or hostname()}+{pid}+{start or process_start(pid) or '0'}+abcd1234"


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
