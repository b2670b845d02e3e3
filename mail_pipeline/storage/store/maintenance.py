"""Retention deletes with their audit rows, and the task statistics the metrics are made of.

Retention never touches an open task: only the final states (COMPLETED, FAILED, CANCELLED,
SKIPPED) can be deleted, and a state is final for good, so a task chosen for deletion cannot
become open again between the ``SELECT`` and the ``DELETE``. Each batch is ONE short
transaction that writes an ``email_task_audit`` row per task and deletes the tasks: either both
happen or neither does. On PostgreSQL the batch's rows are locked ``FOR UPDATE SKIP LOCKED``,
so a concurrent writer is never waited for (its row is simply taken by the next pass).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select

from mail_pipeline.storage.store.base import Repository
from mail_pipeline.storage.store.columns import clean_text
from mail_pipeline.storage.store.models import EmailTask, EmailTaskAudit
from mail_pipeline.storage.store.transitions import EmailSource, TaskStatus, heartbeat_expired

#: The only states retention may delete.
FINAL_STATUSES = frozenset(s for s in TaskStatus if s.is_final)
#: An audited task's error is kept to this many characters (a cap of ours: the column is Text).
MAX_AUDIT_ERROR_CHARS = 10_000


@dataclass(frozen=True)
class AuditRecord:
    """A read-only copy of an ``email_task_audit`` row."""

    task_id: str
    email_source: str
    status: str
    run_id: str | None
    user_id: int | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_seconds: float | None
    emails_fetched: int
    emails_saved: int
    emails_failed: int
    emails_duplicate: int
    error_message: str
    deleted_at: datetime


@dataclass(frozen=True)
class SourceStats:
    """Throughput of one source over its most recent COMPLETED tasks."""

    source: str
    runs: int
    messages_saved: int
    duplicates: int
    failures: int
    seconds: float

    @property
    def saved_per_run(self) -> float:
        """Average messages saved per run (0.0 without runs)."""
        return self.messages_saved / self.runs if self.runs else 0.0

    @property
    def seconds_per_run(self) -> float:
        """Average run duration in seconds (0.0 without runs)."""
        return self.seconds / self.runs if self.runs else 0.0


@dataclass(frozen=True)
class TaskStats:
    """Counts of the ``email_tasks`` table at one moment."""

    by_status: dict[str, int]
    timed_out: int
    failed_last_hour: int
    failed_last_day: int
    duplicates_last_day: int
    throughput: dict[str, SourceStats]
    audited: int

    @property
    def total(self) -> int:
        """Every task row."""
        return sum(self.by_status.values())


def _check_cutoffs(cutoffs: Mapping[TaskStatus, datetime]) -> None:
    if not cutoffs:
        raise ValueError("no retention cutoffs given")
    for status, cutoff in cutoffs.items():
        if TaskStatus(status) not in FINAL_STATUSES:
            raise ValueError(f"retention never deletes {status} tasks (not a final state)")
        if cutoff.tzinfo is None:
            raise ValueError(f"cutoff for {status} is a naive datetime")


def _expired(cutoffs: Mapping[TaskStatus, datetime]) -> ColumnElement[bool]:
    """The WHERE clause: a final task finished before its status's cutoff."""
    clauses = []
    for status, cutoff in cutoffs.items():
        finished_before = or_(
            EmailTask.completed_at < cutoff,
            and_(EmailTask.completed_at.is_(None), EmailTask.updated_at < cutoff),
        )
        clauses.append(and_(EmailTask.status == TaskStatus(status).value, finished_before))
    return or_(*clauses)


class MaintenanceRepository(Repository):
    """Retention of EmailTasks (with audit), the audit trail, and task statistics."""

    def count_expired_tasks(self, cutoffs: Mapping[TaskStatus, datetime]) -> dict[str, int]:
        """Return how many tasks of each status a retention pass would delete (a dry run).

        Raises:
            ValueError: a cutoff for an open state (PENDING/RUNNING), a naive cutoff, or none.
        """
        _check_cutoffs(cutoffs)
        stmt = (
            select(EmailTask.status, func.count())
            .where(_expired(cutoffs))
            .group_by(EmailTask.status)
        )
        with self._transaction() as session:
            return {status: int(n) for status, n in session.execute(stmt).all()}

    def delete_expired_batch(
        self, cutoffs: Mapping[TaskStatus, datetime], batch_size: int
    ) -> dict[str, int]:
        """Audit and delete up to ``batch_size`` expired tasks in ONE transaction.

        Oldest rows (by id) go first. For every task an ``email_task_audit`` row is written
        (source, final status, counters, times, duration, the error of a failed or cancelled
        task) in the same transaction as the delete.

        Returns:
            The number of tasks deleted per status (empty when nothing had expired).

        Raises:
            ValueError: bad cutoffs (see :meth:`count_expired_tasks`) or a batch size < 1.
        """
        _check_cutoffs(cutoffs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        cols = (
            EmailTask.id,
            EmailTask.task_id,
            EmailTask.email_source,
            EmailTask.status,
            EmailTask.run_id,
            EmailTask.user_id,
            EmailTask.created_at,
            EmailTask.started_at,
            EmailTask.completed_at,
            EmailTask.emails_fetched,
            EmailTask.emails_saved,
            EmailTask.emails_failed,
            EmailTask.emails_duplicate,
            EmailTask.error_message,
        )
        stmt = select(*cols).where(_expired(cutoffs)).order_by(EmailTask.id).limit(batch_size)
        if self.dialect == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        now = self._now()
        deleted: dict[str, int] = {}
        with self._transaction() as session:
            rows = session.execute(stmt).all()
            if not rows:
                return {}
            audits: list[dict[str, Any]] = []
            for r in rows:
                duration = None
                if r.started_at is not None and r.completed_at is not None:
                    duration = max(0.0, (r.completed_at - r.started_at).total_seconds())
                audits.append(
                    {
                        "task_id": r.task_id,
                        "email_source": r.email_source,
                        "status": r.status,
                        "run_id": r.run_id,
                        "user_id": r.user_id,
                        "created_at": r.created_at,
                        "started_at": r.started_at,
                        "completed_at": r.completed_at,
                        "duration_seconds": duration,
                        "emails_fetched": r.emails_fetched,
                        "emails_saved": r.emails_saved,
                        "emails_failed": r.emails_failed,
                        "emails_duplicate": r.emails_duplicate,
                        "error_message": clean_text(r.error_message or "", MAX_AUDIT_ERROR_CHARS)
                        if r.status != TaskStatus.COMPLETED.value
                        else "",
                        "deleted_at": now,
                    }
                )
                deleted[r.status] = deleted.get(r.status, 0) + 1
            session.execute(insert(EmailTaskAudit), audits)
            session.execute(
                delete(EmailTask)
                .where(
                    EmailTask.id.in_([r.id for r in rows]),
                    EmailTask.status.in_([s.value for s in FINAL_STATUSES]),
                )
                .execution_options(synchronize_session=False)
            )
        return deleted

    def audit_records(self, *, task_id: str | None = None, limit: int = 100) -> list[AuditRecord]:
        """Return audit rows, most recently deleted first (optionally of one task id)."""
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        stmt = (
            select(EmailTaskAudit)
            .order_by(EmailTaskAudit.deleted_at.desc(), EmailTaskAudit.id.desc())
            .limit(limit)
        )
        if task_id is not None:
            stmt = stmt.where(EmailTaskAudit.task_id == task_id)
        with self._transaction() as session:
            return [
                AuditRecord(
                    a.task_id,
                    a.email_source,
                    a.status,
                    a.run_id,
                    a.user_id,
                    a.created_at,
                    a.started_at,
                    a.completed_at,
                    a.duration_seconds,
                    a.emails_fetched,
                    a.emails_saved,
                    a.emails_failed,
                    a.emails_duplicate,
                    a.error_message,
                    a.deleted_at,
                )
                for a in session.scalars(stmt)
            ]

    def audit_count(self) -> int:
        """Return how many audit rows there are."""
        with self._transaction() as session:
            return int(session.scalar(select(func.count()).select_from(EmailTaskAudit)) or 0)

    def task_stats(
        self, *, recent_runs: int = 50, window: timedelta = timedelta(days=1)
    ) -> TaskStats:
        """Return the task counts the metrics are made of, as of the store's clock.

        ``timed_out``: open tasks whose heartbeat is older than their ``timeout_seconds``
        (stale: their run stopped renewing it). ``failed_last_hour``: FAILED tasks that
        finished in the last hour; ``failed_last_day`` / ``duplicates_last_day``: FAILED
        tasks / duplicates of tasks that finished within ``window`` (24 hours by default).
        ``throughput``: per source, over its last ``recent_runs`` COMPLETED tasks.

        Raises:
            ValueError: ``recent_runs`` < 1, or ``window`` is not positive.
        """
        if recent_runs < 1:
            raise ValueError(f"recent_runs must be positive, got {recent_runs}")
        if window <= timedelta(0):
            raise ValueError(f"window must be positive, got {window}")
        now = self._now()
        hour, day = now - timedelta(hours=1), now - window
        finished = func.coalesce(EmailTask.completed_at, EmailTask.updated_at)
        failed = EmailTask.status == TaskStatus.FAILED.value
        with self._transaction() as session:
            by_status = {
                s: int(n)
                for s, n in session.execute(
                    select(EmailTask.status, func.count()).group_by(EmailTask.status)
                ).all()
            }
            open_ = session.execute(
                select(EmailTask.heartbeat_at, EmailTask.timeout_seconds).where(
                    EmailTask.status.in_([TaskStatus.PENDING.value, TaskStatus.RUNNING.value])
                )
            ).all()
            timed_out = sum(1 for beat, timeout in open_ if heartbeat_expired(beat, timeout, now))
            failed_hour = int(
                session.scalar(select(func.count()).where(failed, finished >= hour)) or 0
            )
            failed_day = int(
                session.scalar(select(func.count()).where(failed, finished >= day)) or 0
            )
            duplicates = int(
                session.scalar(
                    select(func.coalesce(func.sum(EmailTask.emails_duplicate), 0)).where(
                        finished >= day
                    )
                )
                or 0
            )
            throughput: dict[str, SourceStats] = {}
            for source in EmailSource:
                rows = session.execute(
                    select(
                        EmailTask.started_at,
                        EmailTask.completed_at,
                        EmailTask.emails_saved,
                        EmailTask.emails_duplicate,
                        EmailTask.emails_failed,
                    )
                    .where(
                        EmailTask.email_source == source.value,
                        EmailTask.status == TaskStatus.COMPLETED.value,
                        EmailTask.started_at.is_not(None),
                        EmailTask.completed_at.is_not(None),
                    )
                    .order_by(EmailTask.completed_at.desc(), EmailTask.id.desc())
                    .limit(recent_runs)
                ).all()
                seconds = 0.0
                for started, completed, *_ in rows:
                    if started is not None and completed is not None:
                        seconds += max(0.0, (completed - started).total_seconds())
                throughput[source.value] = SourceStats(
                    source.value,
                    len(rows),
                    sum(r[2] for r in rows),
                    sum(r[3] for r in rows),
                    sum(r[4] for r in rows),
                    seconds,
                )
            audited = int(session.scalar(select(func.count()).select_from(EmailTaskAudit)) or 0)
        return TaskStats(
            by_status, timed_out, failed_hour, failed_day, duplicates, throughput, audited
        )
