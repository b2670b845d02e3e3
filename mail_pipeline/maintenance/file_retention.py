"""File retention: expired spool files and unreferenced attachment files, with a dry run.

* **spool** — ``processed/<day>/`` files older than the policy's ``processed_days`` are deleted
  (the message is in the store); ``failed/`` and ``unmatched/`` hold mail an operator has to
  look at, so they are kept longer (from the newest file of the message, e.g. its
  ``.error.json``). ``inbox/``, ``claims/`` and ``tmp/`` are never touched. Symlinks and other
  non-regular files are left alone, never followed.
* **attachments** — files under the attachment root that no ``email_attachments`` row
  references are removed, but only once they are older than a grace period: a save writes its
  files before it commits its rows, so a young unreferenced file may belong to a save in flight.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mail_pipeline.maintenance.retention_policy import DAY, RetentionPolicy
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.store import MailStore

#: At most this many paths are kept in a report's lists (the rest are only counted).
MAX_LISTED = 200


@dataclass
class FileRetentionResult:
    """Files removed (or that would be) from one area, with their bytes."""

    files: int = 0
    bytes: int = 0
    paths: list[str] = field(default_factory=list)

    def add(self, path: str, size: int) -> None:
        """Count one file (its path is listed while the list is short)."""
        self.files += 1
        self.bytes += size
        if len(self.paths) < MAX_LISTED:
            self.paths.append(path)


# --- spool ---------------------------------------------------------------------------------


def _regular_files(folder: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Yield (path, lstat) of the regular files directly in ``folder`` (symlinks skipped)."""
    try:
        entries = os.scandir(folder)
    except FileNotFoundError:
        return
    with entries:
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                yield Path(entry.path), st


def _message_stem(name: str) -> str:
    """``<id>.eml`` / ``<id>.meta`` / ``<id>.error.json`` → ``<id>``."""
    for suffix in (".error.json", ".eml", ".meta"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _expire_grouped(
    folder: Path, max_age: float, now: float, dry_run: bool, result: FileRetentionResult
) -> None:
    """Delete the messages of ``folder`` whose NEWEST file is older than ``max_age`` seconds.

    A message's files (``.eml``, ``.meta``, ``.error.json``) go together.
    """
    groups: dict[str, list[tuple[Path, os.stat_result]]] = {}
    for path, st in _regular_files(folder):
        if path.name.endswith(".tmp"):
            continue
        groups.setdefault(_message_stem(path.name), []).append((path, st))
    for files in groups.values():
        newest = max(st.st_mtime for _p, st in files)
        if now - newest <= max_age:
            continue
        for path, st in sorted(files, key=lambda f: not f[0].name.endswith(".meta")):
            # The .meta (the ready marker) goes first: a half-deleted message is never
            # mistaken for a complete one by requeue.
            if not dry_run:
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
            result.add(str(path), st.st_size)


def cleanup_spool(
    spool_dir: str | os.PathLike[str],
    policy: RetentionPolicy,
    *,
    now: float | None = None,
    dry_run: bool = False,
) -> tuple[FileRetentionResult, FileRetentionResult, FileRetentionResult]:
    """Delete expired files of ``processed/``, ``failed/`` and ``unmatched/``.

    ``processed/<day>/`` files go file by file by their own age (they were stored long ago;
    the mtime a file arrived with is kept by the moves), and a day folder left empty is
    removed. ``failed/`` and ``unmatched/`` go a message at a time, by its newest file.

    Returns:
        (processed, failed, unmatched) results. A missing spool is empty, not an error.
    """
    root = Path(spool_dir)
    now = time.time() if now is None else now
    processed, failed, unmatched = (
        FileRetentionResult(),
        FileRetentionResult(),
        FileRetentionResult(),
    )
    if policy.processed_days is not None:
        max_age = policy.processed_days * DAY
        try:
            days = sorted(os.scandir(root / "processed"), key=lambda e: e.name)
        except FileNotFoundError:
            days = []
        for day in days:
            if not day.is_dir(follow_symlinks=False):
                continue
            try:
                day_idle = now - day.stat(follow_symlinks=False).st_mtime > max_age
            except FileNotFoundError:
                continue
            for path, st in _regular_files(Path(day.path)):
                if now - st.st_mtime <= max_age:
                    continue
                if not dry_run:
                    try:
                        path.unlink()
                    except FileNotFoundError:
                        continue
                processed.add(str(path), st.st_size)
            # An emptied day folder goes too, unless something moved into it lately (its
            # mtime, taken before our deletes, was recent: a fresh folder may be about to
            # receive its first pair).
            if day_idle and not dry_run:
                with contextlib.suppress(OSError):
                    os.rmdir(day.path)  # only succeeds when empty
    if policy.failed_spool_days is not None:
        _expire_grouped(root / "failed", policy.failed_spool_days * DAY, now, dry_run, failed)
    if policy.unmatched_days is not None:
        _expire_grouped(root / "unmatched", policy.unmatched_days * DAY, now, dry_run, unmatched)
    return processed, failed, unmatched


# --- attachments ---------------------------------------------------------------------------


def cleanup_attachments(
    store: MailStore,
    attachment_root: str | os.PathLike[str],
    policy: RetentionPolicy,
    *,
    now: float | None = None,
    dry_run: bool = False,
) -> FileRetentionResult:
    """Remove attachment files no row references and older than the grace period.

    The candidates are listed first and the referenced paths read AFTER, so a file whose
    row was committed meanwhile is kept.

    Returns:
        The files removed (or that would be). A missing root is empty, not an error.
    """
    result = FileRetentionResult()
    root = Path(attachment_root)
    if not root.is_dir():
        return result
    now = time.time() if now is None else now
    storage = AttachmentStorage(root, fsync=False)
    candidates: list[tuple[str, int]] = []
    for relative in storage.iter_files():
        try:
            st = os.lstat(storage.root / relative)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and now - st.st_mtime > policy.attachment_grace_seconds:
            candidates.append((relative, st.st_size))
    if not candidates:
        return result
    referenced = store.messages.attachment_paths()
    orphans = [(rel, size) for rel, size in candidates if rel not in referenced]
    if not dry_run:
        storage.remove(rel for rel, _size in orphans)
    for rel, size in orphans:
        result.add(rel, size)
    return result
