"""How long retention keeps things: the :class:`RetentionPolicy` and its defaults.

The defaults are the seed's: COMPLETED tasks 1 day, FAILED 7 days, CANCELLED and SKIPPED 1
day; spool ``processed/`` 7 days, ``failed/`` and ``unmatched/`` 30 days; unreferenced
attachment files once older than 1 hour; tasks deleted 1,000 per transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mail_pipeline.storage.store import TaskStatus

DAY = 86400.0
DEFAULT_BATCH_SIZE = 1000


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
        for name in (
            "completed_days",
            "failed_days",
            "cancelled_days",
            "skipped_days",
            "processed_days",
            "failed_spool_days",
            "unmatched_days",
        ):
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
