"""Retention: the seed's ``cleanup_tasks`` and its data-cleanup strategy, with an audit trail.

Three parts, each with a dry run that reports what would go and deletes nothing:

* **tasks** — finished EmailTasks past their retention (defaults from the seed: COMPLETED 1
  day, FAILED 7 days, CANCELLED and SKIPPED 1 day, counted from ``completed_at``) are deleted
  in batches (default 1,000), each batch one short transaction that first writes an
  ``email_task_audit`` row per task. PENDING and RUNNING tasks are never touched (that is
  stale-task cleanup's job, :mod:`mail_pipeline.maintenance.stale_tasks`).
* **spool** — ``processed/<day>/`` files older than 7 days are deleted (the message is in the
  store); ``failed/`` and ``unmatched/`` hold mail an operator has to look at, so they are kept
  30 days (from the newest file of the message, e.g. its ``.error.json``). ``inbox/``,
  ``claims/`` and ``tmp/`` are never touched. Symlinks and other non-regular files are left
  alone, never followed.
* **attachments** — files under the attachment root that no ``email_attachments`` row
  references are removed, but only once they are older than a grace period (default 1 hour):
  a save writes its files before it commits its rows, so a young unreferenced file may belong
  to a save in flight.

No Dagster imports: ``cleanup_tasks_job`` and ``mail-pipeline cleanup`` both call
:func:`run_retention`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.store import MailStore, TaskStatus

DAY = 86400.0
DEFAULT_BATCH_SIZE = 1000
#: At most this many paths are kept in a report's lists (the rest are only counted).
MAX_LISTED = 200


@dataclass(frozen=True)
class RetentionPolicy:
    """How long things are kept. Days may be fractional; ``None`` keeps that kind forever."""

    completed_days: float | None = 1.0
    failed_days: float | None = 7.0
    cancelled_days: float | None = 1.0
    skipped_days: float | None = 1.0
    processed_days: float | None = 7.0
    failed_spool_days: float | None = 30.0
    unmatched_days: float | None = 30.0
    attachment_grace_seconds: float = 3600.0
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        for name in ("completed_days", "failed_days", "cancelled_days", "skipped_days",
                     "processed_days", "failed_spool_days", "unmatched_days"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
        if self.attachment_grace_seconds < 0:
            raise ValueError("attachment_grace_seconds must not be negative")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")

    def task_cutoffs(self, now: datetime) -> dict[TaskStatus, datetime]:
        """Return, per final state kept for a limited time, the time before which it goes."""
        days = {
            TaskStatus.COMPLETED: self.completed_days,
            TaskStatus.FAILED: self.failed_days,
            TaskStatus.CANCELLED: self.cancelled_days,
            TaskStatus.SKIPPED: self.skipped_days,
        }
        return {s: now - timedelta(days=d) for s, d in days.items() if d is not None}


@dataclass
class TaskRetentionResult:
    """What task retention deleted (or, in a dry run, would delete), per status."""

    deleted: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    dry_run: bool = False

    @property
    def total(self) -> int:
        """Tasks deleted (or that would be) in all."""
        return sum(self.deleted.values())


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


@dataclass
class RetentionReport:
    """The result of a retention pass."""

    dry_run: bool
    tasks: TaskRetentionResult
    processed: FileRetentionResult
    failed_spool: FileRetentionResult
    unmatched: FileRetentionResult
    attachments: FileRetentionResult
    seconds: float = 0.0

    def summary(self) -> str:
        """One line: what went (or would go)."""
        verb = "would delete" if self.dry_run else "deleted"
        files = (self.processed, self.failed_spool, self.unmatched, self.attachments)
        size = _mib(sum(part.bytes for part in files))
        by_status = ", ".join(f"{n} {s.lower()}" for s, n in sorted(self.tasks.deleted.items()))
        return (
            f"{verb} {self.tasks.total} tasks ({by_status or 'none'}) in "
            f"{self.tasks.batches} batch(es); spool files: {self.processed.files} processed, "
            f"{self.failed_spool.files} failed, {self.unmatched.files} unmatched; "
            f"{self.attachments.files} unreferenced attachment files "
            f"({size} MiB)"
        )

    def metadata(self) -> dict[str, Any]:
        """Return flat numeric metadata (for a Dagster output) plus the dry-run flag."""
        data: dict[str, Any] = {
            "dry_run": self.dry_run,
            "tasks_deleted": self.tasks.total,
            "task_batches": self.tasks.batches,
        }
        for status in ("COMPLETED", "FAILED", "CANCELLED", "SKIPPED"):
            data[f"tasks_deleted_{status.lower()}"] = self.tasks.deleted.get(status, 0)
        for name, part in (("processed", self.processed), ("failed_spool", self.failed_spool),
                           ("unmatched", self.unmatched), ("attachments", self.attachments)):
            data[f"{name}_files_deleted"] = part.files
            data[f"{name}_bytes_deleted"] = part.bytes
        data["seconds"] = round(self.seconds, 3)
        return data

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-serialisable data (with the listed paths)."""
        data = self.metadata()
        data["tasks_deleted_by_status"] = dict(self.tasks.deleted)
        for name, part in (("processed", self.processed), ("failed_spool", self.failed_spool),
                           ("unmatched", self.unmatched), ("attachments", self.attachments)):
            data[f"{name}_paths"] = list(part.paths)
        return data


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f}"


# --- tasks ---------------------------------------------------------------------------------


def cleanup_tasks(
    store: MailStore,
    policy: RetentionPolicy,
    *,
    dry_run: bool = False,
    max_batches: int | None = None,
    on_batch: Callable[[dict[str, int]], None] | None = None,
) -> TaskRetentionResult:
    """Audit and delete the finished tasks past retention, ``policy.batch_size`` at a time.

    Each batch is one transaction (see :meth:`MaintenanceRepository.delete_expired_batch`);
    the loop ends when a batch comes back short. ``max_batches`` bounds one pass (the rest is
    left for the next); ``on_batch`` is called with each batch's counts (for progress logs).

    Returns:
        The counts per status and the number of batches (in a dry run: what would go, and
        the number of batches it would take).

    Raises:
        ValueError: ``max_batches`` < 1.
    """
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"max_batches must be positive, got {max_batches}")
    cutoffs = policy.task_cutoffs(store.clock())
    result = TaskRetentionResult(dry_run=dry_run)
    if not cutoffs:
        return result
    if dry_run:
        result.deleted = store.maintenance.count_expired_tasks(cutoffs)
        batches = -(-result.total // policy.batch_size)
        result.batches = batches if max_batches is None else min(batches, max_batches)
        return result
    while max_batches is None or result.batches < max_batches:
        counts = store.maintenance.delete_expired_batch(cutoffs, policy.batch_size)
        if not counts:
            break
        result.batches += 1
        for status, n in counts.items():
            result.deleted[status] = result.deleted.get(status, 0) + n
        if on_batch is not None:
            on_batch(counts)
        if sum(counts.values()) < policy.batch_size:
            break
    return result


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
    processed, failed, unmatched = (FileRetentionResult(), FileRetentionResult(),
                                    FileRetentionResult())
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
        _expire_grouped(root / "unmatched", policy.unmatched_days * DAY, now, dry_run,
                        unmatched)
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


# --- everything ----------------------------------------------------------------------------


def run_retention(
    store: MailStore,
    policy: RetentionPolicy,
    *,
    spool_dir: str | os.PathLike[str] | None = None,
    attachment_root: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    now: float | None = None,
    max_batches: int | None = None,
    on_batch: Callable[[dict[str, int]], None] | None = None,
) -> RetentionReport:
    """Run task, spool and attachment retention (each part skipped when its place is None).

    ``now`` (epoch seconds) is the file clock; the task clock is the store's.

    Returns:
        The report of the pass.

    Raises:
        ValueError: see :func:`cleanup_tasks`.
        SQLAlchemyError: the store is unreachable (a batch already committed stays so).
    """
    started = time.monotonic()
    tasks = cleanup_tasks(store, policy, dry_run=dry_run, max_batches=max_batches,
                          on_batch=on_batch)
    empty = FileRetentionResult
    processed, failed, unmatched = (
        cleanup_spool(spool_dir, policy, now=now, dry_run=dry_run)
        if spool_dir is not None else (empty(), empty(), empty())
    )
    attachments = (
        cleanup_attachments(store, attachment_root, policy, now=now, dry_run=dry_run)
        if attachment_root is not None else empty()
    )
    return RetentionReport(dry_run, tasks, processed, failed, unmatched, attachments,
                           time.monotonic() - started)
