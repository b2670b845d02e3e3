"""A snapshot of the spool: counts per folder, the oldest inbox file, what needs attention."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mail_pipeline.intake.spool.claims import stale_claims
from mail_pipeline.intake.spool.files import count_suffix

if TYPE_CHECKING:
    from mail_pipeline.intake.spool.layout import Spool


@dataclass(frozen=True)
class SpoolStatus:
    """A snapshot of the spool (see :func:`spool_status`)."""

    inbox_ready: int
    inbox_waiting: int
    processed: int
    failed: int
    unmatched: int
    claims: int
    oldest_inbox_age_seconds: float | None
    stale_claims: list[str]
    stale_eml_without_meta: list[str]
    refused: list[str]

    def as_dict(self) -> dict[str, Any]:
        """Return the status as plain JSON-serialisable data."""
        return {
            "inbox_ready": self.inbox_ready,
            "inbox_waiting": self.inbox_waiting,
            "processed": self.processed,
            "failed": self.failed,
            "unmatched": self.unmatched,
            "claims": self.claims,
            "oldest_inbox_age_seconds": self.oldest_inbox_age_seconds,
            "stale_claims": list(self.stale_claims),
            "stale_eml_without_meta": list(self.stale_eml_without_meta),
            "refused": list(self.refused),
        }


def spool_status(spool: Spool, *, now: float | None = None, limit: int = 100) -> SpoolStatus:
    """Return counts per folder, the oldest inbox file's age, and what needs attention.

    ``stale_claims``: claim folders whose owner is gone (the next pass returns them);
    ``stale_eml_without_meta``: inbox ``.eml`` files without ``.meta`` older than
    ``stale_eml_seconds`` (legacy files waiting for the grace period count too);
    ``refused``: symlinks and other non-regular files in the inbox. Lists are capped at
    ``limit`` entries.

    Raises:
        OSError: a folder of the spool cannot be listed.
    """
    now = time.time() if now is None else now
    ready = waiting = 0
    oldest: float | None = None
    stale: list[str] = []
    refused: list[str] = []
    metas: set[str] = set()
    emls: dict[str, float] = {}
    with os.scandir(spool.inbox) as entries:
        for entry in entries:
            if not entry.name.endswith((".eml", ".meta")):
                continue
            if not entry.is_file(follow_symlinks=False):
                if len(refused) < limit:
                    refused.append(entry.name)
                continue
            mtime = entry.stat(follow_symlinks=False).st_mtime
            oldest = mtime if oldest is None else min(oldest, mtime)
            if entry.name.endswith(".meta"):
                metas.add(entry.name[:-5])
            else:
                emls[entry.name[:-4]] = mtime
    for stem, mtime in emls.items():
        if stem in metas:
            ready += 1
        else:
            waiting += 1
            if now - mtime > spool.stale_eml_seconds and len(stale) < limit:
                stale.append(f"{stem}.eml")
    processed = 0
    with os.scandir(spool.processed) as days:
        for day in days:
            if day.is_dir(follow_symlinks=False):
                processed += count_suffix(Path(day.path), ".meta")
    with os.scandir(spool.claims) as entries:
        claims = sum(1 for e in entries if e.is_dir(follow_symlinks=False))
    return SpoolStatus(
        inbox_ready=ready,
        inbox_waiting=waiting,
        processed=processed,
        failed=count_suffix(spool.failed, ".meta"),
        unmatched=count_suffix(spool.unmatched, ".meta"),
        claims=claims,
        oldest_inbox_age_seconds=None if oldest is None else max(0.0, now - oldest),
        stale_claims=[p.name for p in stale_claims(spool)][:limit],
        stale_eml_without_meta=sorted(stale),
        refused=sorted(refused),
    )
