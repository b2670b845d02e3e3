"""Metrics: the seed's ``get_task_metrics`` plus throughput, the spool, and every mailbox.

:func:`compute_metrics` reads the store (and the spool directory, when given) and returns a
:class:`Metrics` snapshot. It is shown three ways: as the ordered, unit-labelled series of
:mod:`mail_pipeline.maintenance.metric_points` (a point of the ``mail_metrics`` asset, which the
Dagster UI plots over time), in full by ``mail-pipeline metrics`` (:meth:`Metrics.numeric`, a
table, or ``--json``), and judged by :mod:`mail_pipeline.maintenance.health`.

No Dagster imports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.spool.layout import Spool
from mail_pipeline.platform.settings import DEFAULT_METRICS_WINDOW_HOURS
from mail_pipeline.storage.store import (
    EmailSource,
    MailboxStatus,
    MailStore,
    SourceStats,
    TaskStatus,
)

#: Throughput is averaged over this many of a source's most recent COMPLETED tasks.
DEFAULT_RECENT_RUNS = 50

_SOURCE_KEYS = {EmailSource.IMAP.value: "imap", EmailSource.HARAKA.value: "haraka"}


@dataclass(frozen=True)
class SpoolMetrics:
    """The spool's counts (messages, i.e. ``.meta`` files) and the oldest inbox file's age."""

    inbox_ready: int
    failed: int
    unmatched: int
    oldest_inbox_age_seconds: float | None


@dataclass(frozen=True)
class Metrics:
    """A snapshot of the pipeline's state (see the module docstring)."""

    generated_at: datetime
    tasks_by_status: dict[str, int]
    timed_out: int
    failed_last_hour: int
    #: FAILED tasks that finished within the window (the last :attr:`window_hours`)
    failed_in_window: int
    #: duplicates of the tasks that finished within the window
    duplicates_in_window: int
    throughput: dict[str, SourceStats]
    audited_tasks: int
    spool: SpoolMetrics | None
    #: every recorded mailbox, active or not
    mailboxes: list[MailboxStatus] = field(default_factory=list)
    #: how many mailboxes are active: an active user with an (active) IMAP config
    active_mailbox_count: int = 0
    #: the recorded state of the active mailboxes (one never fetched has none yet)
    active_mailboxes: list[MailboxStatus] = field(default_factory=list)
    #: seconds the latest COMPLETED task of each source took, by source value
    last_run_seconds: dict[str, float] = field(default_factory=dict)
    #: the hours of the window of :attr:`failed_in_window` and :attr:`duplicates_in_window`
    window_hours: int = DEFAULT_METRICS_WINDOW_HOURS

    @property
    def total_tasks(self) -> int:
        """Every EmailTask row."""
        return sum(self.tasks_by_status.values())

    def count(self, status: TaskStatus) -> int:
        """Tasks in ``status``."""
        return self.tasks_by_status.get(status.value, 0)

    @property
    def paused_mailboxes(self) -> list[MailboxStatus]:
        """The mailboxes the circuit breaker paused."""
        return [m for m in self.mailboxes if m.paused]

    @property
    def failing_mailboxes(self) -> list[MailboxStatus]:
        """Mailboxes whose last fetch failed (paused or not)."""
        return [m for m in self.mailboxes if m.consecutive_failures > 0]

    @property
    def failing_active_mailboxes(self) -> list[MailboxStatus]:
        """Active mailboxes whose latest fetch failed, or that are paused (not fetched)."""
        return [m for m in self.active_mailboxes if m.consecutive_failures > 0 or m.paused]

    def seed_metrics(self) -> dict[str, int]:
        """The seed's ``get_task_metrics`` keys and values."""
        return {
            "total_tasks": self.total_tasks,
            "running_tasks": self.count(TaskStatus.RUNNING),
            "completed_tasks": self.count(TaskStatus.COMPLETED),
            "failed_tasks": self.count(TaskStatus.FAILED),
            "timeout_tasks": self.timed_out,
            "recent_failed_tasks": self.failed_last_hour,
        }

    def numeric(self) -> dict[str, float | int]:
        """Return every number as a flat ``name -> value`` dict (``mail-pipeline metrics``;
        the UI plots the series of :mod:`mail_pipeline.maintenance.metric_points` instead).

        Keys: the seed's metrics, ``pending_tasks``/``cancelled_tasks``/``skipped_tasks``,
        ``failed_tasks_24h`` and ``duplicates_24h`` (in the window, named for its default),
        ``window_hours``, ``audited_tasks``, per source
        ``imap_saved_per_run``/``imap_seconds_per_run``/``imap_runs`` (and ``haraka_...``),
        ``spool_inbox_ready``/``spool_failed``/``spool_unmatched``/
        ``spool_oldest_inbox_age_seconds`` (0 when the inbox is empty), ``mailboxes``,
        ``mailboxes_paused``, ``mailboxes_failing``, ``max_consecutive_failures``.
        """
        data: dict[str, float | int] = dict(self.seed_metrics())
        data["pending_tasks"] = self.count(TaskStatus.PENDING)
        data["cancelled_tasks"] = self.count(TaskStatus.CANCELLED)
        data["skipped_tasks"] = self.count(TaskStatus.SKIPPED)
        data["failed_tasks_24h"] = self.failed_in_window
        data["duplicates_24h"] = self.duplicates_in_window
        data["window_hours"] = self.window_hours
        data["audited_tasks"] = self.audited_tasks
        for source, stats in self.throughput.items():
            key = _SOURCE_KEYS.get(source, source.lower())
            data[f"{key}_runs"] = stats.runs
            data[f"{key}_saved_per_run"] = round(stats.saved_per_run, 3)
            data[f"{key}_seconds_per_run"] = round(stats.seconds_per_run, 3)
        if self.spool is not None:
            data["spool_inbox_ready"] = self.spool.inbox_ready
            data["spool_failed"] = self.spool.failed
            data["spool_unmatched"] = self.spool.unmatched
            data["spool_oldest_inbox_age_seconds"] = round(
                self.spool.oldest_inbox_age_seconds or 0.0, 1
            )
        data["mailboxes"] = len(self.mailboxes)
        data["mailboxes_paused"] = len(self.paused_mailboxes)
        data["mailboxes_failing"] = len(self.failing_mailboxes)
        data["max_consecutive_failures"] = max(
            (m.consecutive_failures for m in self.mailboxes), default=0
        )
        return data

    def as_dict(self) -> dict[str, Any]:
        """Return the snapshot as JSON-serialisable data (numbers plus per-mailbox detail)."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "generated_at": self.generated_at.isoformat(),
            "metrics": self.numeric(),
            "tasks_by_status": dict(sorted(self.tasks_by_status.items())),
            "spool": None
            if self.spool is None
            else {
                "inbox_ready": self.spool.inbox_ready,
                "failed": self.spool.failed,
                "unmatched": self.spool.unmatched,
                "oldest_inbox_age_seconds": self.spool.oldest_inbox_age_seconds,
            },
            "mailboxes": [
                {
                    "user": m.username,
                    "user_id": m.user_id,
                    "last_success_at": iso(m.last_success_at),
                    "last_attempt_at": iso(m.last_attempt_at),
                    "consecutive_failures": m.consecutive_failures,
                    "consecutive_auth_failures": m.consecutive_auth_failures,
                    "last_error_kind": m.last_error_kind,
                    "last_error": m.last_error,
                    "paused": m.paused,
                    "paused_reason": m.paused_reason,
                    "paused_at": iso(m.paused_at),
                }
                for m in self.mailboxes
            ],
        }


def spool_metrics(spool_dir: str | os.PathLike[str], *, now: float | None = None) -> SpoolMetrics:
    """Return the spool's counts; a spool that does not exist yet counts as empty.

    Raises:
        SpoolError: a spool folder is a symlink or not a directory.
    """
    if not Path(spool_dir).is_dir():
        return SpoolMetrics(0, 0, 0, None)
    status = Spool(spool_dir).open().status(now=now, limit=0)
    return SpoolMetrics(
        status.inbox_ready, status.failed, status.unmatched, status.oldest_inbox_age_seconds
    )


def compute_metrics(
    store: MailStore,
    *,
    spool_dir: str | os.PathLike[str] | None = None,
    spool: SpoolMetrics | None = None,
    recent_runs: int = DEFAULT_RECENT_RUNS,
    window_hours: int = DEFAULT_METRICS_WINDOW_HOURS,
    now: float | None = None,
) -> Metrics:
    """Return a :class:`Metrics` snapshot of ``store`` (and of the spool, when given).

    The spool part is read from ``spool_dir``, or, without one, taken from ``spool`` (as
    measured by whoever owns the spool); with neither it is None. FAILED tasks and
    duplicates are counted over the last ``window_hours``
    (``MAIL_PIPELINE_METRICS_WINDOW_HOURS``).

    Task times use the store's clock; ``now`` (epoch seconds) is the spool's file clock.

    Raises:
        ValueError: ``recent_runs`` < 1, or ``window_hours`` < 1.
        SQLAlchemyError: the store is unreachable.
        SpoolError: see :func:`spool_metrics`.
    """
    if window_hours < 1:
        raise ValueError(f"window_hours must be 1 or more, got {window_hours}")
    stats = store.maintenance.task_stats(
        recent_runs=recent_runs, window=timedelta(hours=window_hours)
    )
    mailboxes = store.mailboxes.all()
    active = {t.user_id for t in EmailConfigManager(store, None).imap_targets()}
    return Metrics(
        generated_at=store.clock(),
        tasks_by_status=stats.by_status,
        timed_out=stats.timed_out,
        failed_last_hour=stats.failed_last_hour,
        failed_in_window=stats.failed_last_day,
        duplicates_in_window=stats.duplicates_last_day,
        throughput=stats.throughput,
        audited_tasks=stats.audited,
        spool=spool if spool_dir is None else spool_metrics(spool_dir, now=now),
        mailboxes=mailboxes,
        active_mailbox_count=len(active),
        active_mailboxes=[m for m in mailboxes if m.user_id in active],
        last_run_seconds=_last_run_seconds(store),
        window_hours=window_hours,
    )


def _last_run_seconds(store: MailStore) -> dict[str, float]:
    """Return, per source value, the seconds its latest COMPLETED task took (if it has one)."""
    out: dict[str, float] = {}
    for source in EmailSource:
        for task in store.tasks.recent(status=TaskStatus.COMPLETED, source=source, limit=1):
            if task.started_at is not None and task.completed_at is not None:
                out[source.value] = max(0.0, (task.completed_at - task.started_at).total_seconds())
    return out
