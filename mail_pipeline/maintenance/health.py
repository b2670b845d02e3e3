"""Health: judge a :class:`~mail_pipeline.maintenance.metrics.Metrics` snapshot against thresholds.

Levels and exit codes (``mail-pipeline health``, for cron or a container health check):
0 healthy, 1 warning, 2 critical. Defaults follow the seed and what an operator expects:

| check | default | level |
| --- | --- | --- |
| a stale task: open, no heartbeat for longer than its ``timeout_seconds`` | at least 1 | warning |
| FAILED tasks in the last 24 h | more than 10 | critical |
| mailboxes paused by the circuit breaker | at least 1 | warning |
| the oldest spool inbox file (ingest not keeping up) | older than 30 min | warning |
| messages waiting in spool ``failed/`` | off | warning |

No Dagster imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from mail_pipeline.maintenance.metrics import Metrics


class HealthLevel(IntEnum):
    """Health levels; the value is the exit code."""

    HEALTHY = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        """``healthy``, ``warning`` or ``critical``."""
        return self.name.lower()


@dataclass(frozen=True)
class HealthThresholds:
    """When a check fires. ``None`` turns a check off."""

    #: warning when at least this many open tasks are stale (heartbeat older than the timeout)
    timed_out_warning: int | None = 1
    #: critical when MORE than this many tasks failed in the last 24 hours
    failed_24h_critical: int | None = 10
    #: warning when at least this many mailboxes are paused
    paused_warning: int | None = 1
    #: warning when the oldest inbox file is older than this (seconds)
    inbox_age_warning_seconds: float | None = 1800.0
    #: warning when at least this many messages wait in spool failed/
    spool_failed_warning: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "timed_out_warning",
            "failed_24h_critical",
            "paused_warning",
            "inbox_age_warning_seconds",
            "spool_failed_warning",
        ):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")


@dataclass(frozen=True)
class HealthReport:
    """The verdict: the worst level found and a reason per check that fired."""

    level: HealthLevel
    reasons: list[tuple[HealthLevel, str]] = field(default_factory=list)

    def line(self) -> str:
        """One line: ``critical: 12 tasks failed in 24 h (> 10); warning: ...``."""
        if not self.reasons:
            return "healthy"
        ordered = sorted(self.reasons, key=lambda r: -r[0])
        return "; ".join(f"{level.label}: {text}" for level, text in ordered)


def evaluate(metrics: Metrics, thresholds: HealthThresholds | None = None) -> HealthReport:
    """Return the health of ``metrics`` under ``thresholds`` (defaults when None)."""
    t = thresholds or HealthThresholds()
    reasons: list[tuple[HealthLevel, str]] = []
    if t.failed_24h_critical is not None and metrics.failed_last_day > t.failed_24h_critical:
        reasons.append(
            (
                HealthLevel.CRITICAL,
                f"{metrics.failed_last_day} tasks failed in the "
                f"last 24 h (more than {t.failed_24h_critical})",
            )
        )
    if (
        t.timed_out_warning is not None
        and t.timed_out_warning > 0
        and metrics.timed_out >= t.timed_out_warning
    ):
        reasons.append(
            (
                HealthLevel.WARNING,
                f"{metrics.timed_out} stale task(s): no heartbeat "
                "within their timeout (see: mail-pipeline cleanup-stale)",
            )
        )
    paused = metrics.paused_mailboxes
    if t.paused_warning is not None and t.paused_warning > 0 and len(paused) >= t.paused_warning:
        names = ", ".join(m.username for m in paused[:10])
        more = f" and {len(paused) - 10} more" if len(paused) > 10 else ""
        reasons.append(
            (
                HealthLevel.WARNING,
                f"{len(paused)} mailbox(es) paused after authentication failures: {names}{more}",
            )
        )
    spool = metrics.spool
    if spool is not None:
        age = spool.oldest_inbox_age_seconds
        if (
            t.inbox_age_warning_seconds is not None
            and age is not None
            and age > t.inbox_age_warning_seconds
        ):
            reasons.append(
                (
                    HealthLevel.WARNING,
                    f"spool backlog: the oldest inbox file is "
                    f"{age:.0f} s old (limit {t.inbox_age_warning_seconds:.0f} s)",
                )
            )
        if (
            t.spool_failed_warning is not None
            and t.spool_failed_warning > 0
            and spool.failed >= t.spool_failed_warning
        ):
            reasons.append((HealthLevel.WARNING, f"{spool.failed} message(s) in spool failed/"))
    level = max((lvl for lvl, _ in reasons), default=HealthLevel.HEALTHY)
    return HealthReport(HealthLevel(level), reasons)
