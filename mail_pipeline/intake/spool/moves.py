"""Moving claimed pairs out: to ``processed/<day>/``, ``unmatched/``, ``failed/`` or back.

The ``.eml`` always moves first and its ``.meta`` (the ready marker) last, so a crash between
the two renames leaves a lone ``.meta`` that claim recovery puts beside its ``.eml`` (see
:mod:`.claims`). A move never overwrites: when the destination name is taken (a legacy name
seen twice) the pair gets a ``~N`` suffix; the check is the rename itself (one
``renameat2(RENAME_NOREPLACE)`` per file, see :mod:`.files`), so a move out of a claim costs
its two renames and no ``stat``. ``failed/<id>.error.json`` says why a pair is
there: reason code, detail, time and the meta.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mail_pipeline.intake.spool.files import (
    free_stem,
    fsync_dir,
    is_regular,
    rename_noreplace,
    utc_now,
    write_new_file,
)
from mail_pipeline.intake.spool.meta import SpoolMeta, processed_day
from mail_pipeline.intake.spool.records import Item, Problem

if TYPE_CHECKING:
    from mail_pipeline.intake.spool.layout import Spool


def move_pair(item: Item, folder: Path) -> Path:
    """Move ``item``'s ``.eml`` then its ``.meta`` into ``folder`` (created if missing).

    Never overwrites: a taken name gets a ``~N`` suffix. Each file moves with ONE
    no-replace rename (:func:`rename_noreplace`), which is the free-name check itself, so the
    usual move costs two renames and no ``lstat``. Returns the new ``.eml`` path.

    Raises:
        FileNotFoundError: the claim was taken over (the files are no longer ours).
    """
    base = os.fspath(folder)
    stem, n = item.stem, 0
    while True:
        try:
            rename_noreplace(item.eml, f"{base}/{stem}.eml")
            break
        except FileExistsError:
            n += 1
            stem = f"{item.stem}~{n}"
        except FileNotFoundError:
            if folder.is_dir():
                raise  # the .eml is gone: not ours any more
            folder.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            rename_noreplace(item.meta, f"{base}/{stem}.meta")
            return folder / f"{stem}.eml"
        except FileExistsError:
            # A lone .meta already has this name: carry the .eml on to a stem free for both.
            free = free_stem(folder, item.stem)
            with contextlib.suppress(FileExistsError):  # taken meanwhile: look again
                rename_noreplace(f"{base}/{stem}.eml", f"{base}/{free}.eml")
                stem = free


def processed_folder(spool: Spool, meta: SpoolMeta | None) -> Path:
    """Return ``processed/<day>/`` for a meta (the UTC day of its ``received_at``)."""
    return spool.processed / processed_day(meta)


def write_error(spool: Spool, stem: str, reason: str, detail: str, meta: SpoolMeta | None) -> Path:
    """Write ``failed/<stem>.error.json`` (reason code, detail, time, the meta); return it.

    Raises:
        OSError: it cannot be written.
    """
    path = spool.failed / f"{stem}.error.json"
    record = {
        "id": stem,
        "reason": reason,
        "detail": detail,
        "failed_at": utc_now().isoformat(),
        "meta": meta.to_dict() if meta is not None else None,
    }
    write_new_file(path, (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode())
    return path


def move_failed(spool: Spool, item: Item, reason: str, detail: str, meta: SpoolMeta | None) -> Path:
    """Quarantine ``item`` in ``failed/`` with its ``.error.json``; return the ``.eml`` path.

    Raises:
        FileNotFoundError: the claim was taken over.
    """
    stem = free_stem(spool.failed, item.stem)
    write_error(spool, stem, reason, detail, meta)
    os.rename(item.eml, spool.failed / f"{stem}.eml")
    os.rename(item.meta, spool.failed / f"{stem}.meta")
    return spool.failed / f"{stem}.eml"


def return_to_inbox(spool: Spool, item: Item) -> None:
    """Give a claimed pair back to the inbox (``.eml`` first, the ready marker last)."""
    with contextlib.suppress(FileNotFoundError):
        os.rename(item.eml, spool.inbox / item.eml.name)
    with contextlib.suppress(FileNotFoundError):
        os.rename(item.meta, spool.inbox / item.meta.name)


def requeue(spool: Spool, folder: Path) -> tuple[int, list[Problem]]:
    """Move every pair of ``folder`` (``failed/`` or ``unmatched/``) back into ``inbox/``.

    The ``.eml`` moves first, the ``.meta`` last; a pair's ``.error.json`` is removed.

    Returns:
        (pairs moved, problems: refused files, lone files, names taken in the inbox).
    """
    moved = 0
    problems: list[Problem] = []
    with os.scandir(folder) as entries:
        metas = [e for e in entries if e.name.endswith(".meta")]
    for entry in metas:
        stem = entry.name[: -len(".meta")]
        eml = folder / f"{stem}.eml"
        if not entry.is_file(follow_symlinks=False) or (
            os.path.lexists(eml) and not is_regular(eml)
        ):
            problems.append(Problem(entry.path, "symlink", "not a regular file: left alone"))
            continue
        if os.path.lexists(spool.inbox / entry.name) or os.path.lexists(
            spool.inbox / f"{stem}.eml"
        ):
            problems.append(Problem(entry.path, "name_taken", "the inbox has this name"))
            continue
        try:
            if is_regular(eml):
                os.rename(eml, spool.inbox / f"{stem}.eml")
            os.rename(entry.path, spool.inbox / entry.name)
        except FileNotFoundError:
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / f"{stem}.error.json")
        moved += 1
    fsync_dir(spool.inbox)
    return moved, problems
