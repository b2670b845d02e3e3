"""Helpers of the maintenance tests: spool trees and files of a given age."""

from __future__ import annotations

import os
from pathlib import Path

from mail_pipeline.maintenance.retention_policy import DAY
from mail_pipeline_tests.fixtures.spool_files import make_spool


def aged_file(path: Path, age_days: float, now: float, data: bytes = b"x" * 10) -> Path:
    """Write ``data`` to ``path`` with an mtime ``age_days`` before ``now``; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (now - age_days * DAY, now - age_days * DAY))
    return path


def spool_tree(root: Path, now: float) -> dict[str, Path]:
    """Build a spool under ``root`` with files of known ages; return them by name."""
    make_spool(root)
    files = {}
    for name, age in (("old", 8), ("young", 3)):
        day = root / "processed" / ("2026-11-01" if name == "old" else "2026-11-17")
        files[f"processed_{name}_eml"] = aged_file(day / f"{name}.eml", age, now)
        files[f"processed_{name}_meta"] = aged_file(day / f"{name}.meta", age, now)
    os.utime(root / "processed" / "2026-11-01", (now - 8 * DAY, now - 8 * DAY))
    # failed/: an old message whose error is recent stays (its newest file counts).
    for stem, ages in (
        ("f-old", (40, 40, 35)),
        ("f-recent-error", (40, 40, 2)),
        ("f-young", (5, 5, 5)),
    ):
        for suffix, age in zip((".eml", ".meta", ".error.json"), ages, strict=True):
            files[f"{stem}{suffix}"] = aged_file(root / "failed" / f"{stem}{suffix}", age, now)
    for stem, age in (("u-old", 31), ("u-young", 29)):
        for suffix in (".eml", ".meta"):
            files[f"{stem}{suffix}"] = aged_file(root / "unmatched" / f"{stem}{suffix}", age, now)
    # Never touched, however old: the inbox, claims, tmp, and symlinks.
    files["inbox"] = aged_file(root / "inbox" / "waiting.eml", 100, now)
    files["claim"] = aged_file(root / "claims" / "h+1+1+ab" / "c.eml", 100, now)
    files["tmp"] = aged_file(root / "tmp" / "t.eml.tmp", 100, now)
    target = aged_file(root.parent / "outside.eml", 100, now)
    link = root / "failed" / "link.eml"
    link.symlink_to(target)
    files["outside"] = target
    return files
