"""Claiming from ``inbox/``: stream it and take ready pairs (and old legacy files) into a claim.

A pair is claimed by renaming its ``.meta`` into the claim folder FIRST: ``rename`` is atomic,
so when two ingesters race for a pair exactly one rename succeeds and the other gets
``FileNotFoundError`` and skips the pair. The ``.eml`` follows.

An ``.eml`` without its ``.meta`` is not a message yet and is never touched, except a
**legacy** file: an ``.eml`` whose stem is NOT a UUID, has no ``.meta`` and is older than the
legacy grace period is claimed with a synthesised meta (see :meth:`SpoolMeta.for_legacy_file`).
A UUID-named ``.eml`` without meta is Haraka's (it died between the two renames): left alone.
Symlinks, non-regular files and unexpected names are refused: left where they are and
reported, never read or moved.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mail_pipeline.intake.spool.files import rename_new, write_new_file
from mail_pipeline.intake.spool.meta import SpoolMeta
from mail_pipeline.intake.spool.moves import write_error
from mail_pipeline.intake.spool.records import ClaimStats, Item, Problem

if TYPE_CHECKING:
    from mail_pipeline.intake.spool.layout import Spool

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Stems we are willing to handle at all (no leading dot, no control characters).
SAFE_STEM = re.compile(r"^[A-Za-z0-9_@+=,-][A-Za-z0-9_@+=,.~-]{0,200}$")


def iter_claims(
    spool: Spool, claim: Path, stats: ClaimStats, *, now: float | None = None
) -> Iterator[Item]:
    """Stream the inbox, claiming ready pairs (and old legacy files) into ``claim``.

    Yields each claimed :class:`Item` as soon as it is ours; the scan is lazy
    (``os.scandir``), so memory does not depend on the size of the inbox. Symlinks and
    non-regular files are recorded in ``stats.refused`` and left alone; a ``.meta`` whose
    ``.eml`` is missing goes to ``failed/`` (``stats.orphans``).
    """
    now = time.time() if now is None else now
    inbox = os.fspath(spool.inbox)
    with os.scandir(inbox) as entries:
        for entry in entries:
            name = entry.name
            if name.endswith(".meta"):
                stem = name[: -len(".meta")]
                legacy = False
            elif name.endswith(".eml"):
                stem = name[: -len(".eml")]
                legacy = True
            else:
                continue
            if not SAFE_STEM.match(stem):
                stats.refused.append(Problem(entry.path, "bad_name", "unexpected file name"))
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    kind = "symlink" if entry.is_symlink() else "not_regular"
                    stats.refused.append(Problem(entry.path, kind, "not a regular file"))
                    continue
                if legacy:
                    item = _claim_legacy(spool, entry, stem, claim, now)
                else:
                    item = _claim_pair(spool, inbox, entry, stem, claim, stats)
            except FileNotFoundError:
                continue  # taken by someone else meanwhile
            if item is not None:
                yield item


def _claim_pair(
    spool: Spool, inbox: str, entry: os.DirEntry[str], stem: str, claim: Path, stats: ClaimStats
) -> Item | None:
    """Claim the ready pair of the ``.meta`` ``entry`` (the ``.meta`` first).

    Three system calls: one ``lstat`` of the ``.eml`` (it must be a regular file, and its size
    bounds the batch) and the two renames; the ``.meta``'s type comes from the scan.
    Returns the claimed item, or None if the ``.eml`` is refused or missing (an orphan).

    Raises:
        FileNotFoundError: the ``.meta`` is gone (another ingester claimed it).
    """
    eml_src = f"{inbox}/{stem}.eml"
    try:
        eml_st: os.stat_result | None = os.lstat(eml_src)
    except FileNotFoundError:
        eml_st = None
    eml_mode = eml_st.st_mode if eml_st is not None else None
    if eml_mode is not None and not stat.S_ISREG(eml_mode):
        stats.refused.append(
            Problem(
                eml_src,
                "symlink" if stat.S_ISLNK(eml_mode) else "not_regular",
                "the .eml is not a regular file",
            )
        )
        return None
    meta = claim / f"{stem}.meta"
    eml = claim / f"{stem}.eml"
    size = eml_st.st_size if eml_st is not None else 0
    os.rename(entry.path, meta)  # THE claim; FileNotFoundError: not ours
    try:
        os.rename(eml_src, eml)
    except FileNotFoundError:
        # Haraka renames the .eml before the .meta, so this .meta is an orphan.
        write_error(
            spool, stem, "missing_eml", "the .meta has no .eml", SpoolMeta.read_or_none(meta)
        )
        failed = spool.failed / meta.name
        rename_new(meta, failed)
        stats.orphans.append(Problem(str(failed), "missing_eml", "the .meta has no .eml"))
        return None
    return Item(stem, eml, meta, size)


def _claim_legacy(
    spool: Spool, entry: os.DirEntry[str], stem: str, claim: Path, now: float
) -> Item | None:
    """Claim an old seed-era ``.eml`` with a synthesised meta; None if not (yet) one."""
    if UUID_RE.match(stem):
        return None  # Haraka's; its .meta is the ready marker
    st = entry.stat(follow_symlinks=False)
    if now - st.st_mtime < spool.legacy_grace_seconds:
        return None
    if os.path.lexists(f"{os.path.dirname(entry.path)}/{stem}.meta"):
        return None  # a ready pair: claimed through its .meta
    eml = claim / f"{stem}.eml"
    os.rename(entry.path, eml)  # the claim of a legacy file
    received = datetime.fromtimestamp(st.st_mtime, UTC)
    meta = claim / f"{stem}.meta"
    write_new_file(meta, SpoolMeta.for_legacy_file(stem, received, st.st_size).to_json())
    return Item(stem, eml, meta, st.st_size, legacy=True)
