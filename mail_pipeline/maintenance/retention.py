"""Retention: the seed's ``cleanup_tasks`` and its data-cleanup strategy, with an audit trail.

Three parts, each with a dry run that reports what would go and deletes nothing:

* **tasks** (here) — finished EmailTasks past their retention (see
  :mod:`mail_pipeline.maintenance.retention_policy`, counted from ``completed_at``) are deleted
  in batches (default 1,000), each batch one short transaction that first writes an
  ``email_task_audit`` row per task. PENDING and RUNNING tasks are never touched (that is
  stale-task cleanup's job, :mod:`mail_pipeline.maintenance.stale_tasks`).
* **spool** and **attachments** — expired spool files and unreferenced attachment files
  (:mod:`mail_pipeline.maintenance.file_retention`).

:func:`run_retention` runs the three and returns one :class:`RetentionReport`. No Dagster
imports: ``cleanup_tasks_job`` and ``mail-pipeline cleanup`` both call it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mail_pipeline.maintenance.file_retention import (
    FileRetentionResult,
    cleanup_attachments,
    cleanup_spool,
)
from mail_pipeline.maintenance.retention_policy import RetentionPolicy
from mail_pipeline.storage.store import MailStore


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
        for name, part in (
            ("processed", self.processed),
            ("failed_spool", self.failed_spool),
            ("unmatched", self.unmatched),
            ("attachments", self.attachments),
        ):
            data[f"{name}_files_deleted"] = part.files
            data[f"{name}_bytes_deleted"] = part.bytes
        data["seconds"] = round(self.seconds, 3)
        return data

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-serialisable data (with the listed paths)."""
        data = self.metadata()
        data["tasks_deleted_by_status"] = dict(self.tasks.deleted)
        for name, part in (
            ("processed", self.processed),
            ("failed_spool", self.failed_spool),
            ("unmatched", self.unmatched),
            ("attachments", self.attachments),
        ):
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
    tasks = cleanup_tasks(
        store, policy, dry_run=dry_run, max_batches=max_batches, on_batch=on_batch
    )
    empty = FileRetentionResult
    processed, failed, unmatched = (
        cleanup_spool(spool_dir, policy, now=now, dry_run=dry_run)
        if spool_dir is not None
        else (empty(), empty(), empty())
    )
    attachments = (
        cleanup_attachments(store, attachment_root, policy, now=now, dry_run=dry_run)
        if attachment_root is not None
        else empty()
    )
    return RetentionReport(
        dry_run, tasks, processed, failed, unmatched, attachments, time.monotonic() - started
    )
