"""Health: judge a :class:`~mail_pipeline.maintenance.metrics.Metrics` snapshot.

:func:`evaluate` returns a :class:`HealthReport`: a plain data object, its ``status`` (the worst
level found) and its ``findings`` (one per thing that is wrong, worst first), that the CLI
(``mail-pipeline health``), the ``mail_metrics`` asset and any other view share.
:meth:`HealthReport.message` is the one line an operator reads, e.g.::

    WARNING: 1 of 3 mailboxes failed their latest fetch: bob (auth: login refused, since
    2026-12-03 10:02 UTC); 4 tasks FAILED in the last 24 h

The rules and their thresholds are in :mod:`mail_pipeline.maintenance.health_thresholds`:
WARNING when an active mailbox failed its latest fetch (or is paused), a task FAILED in the
metrics' window (``MAIL_PIPELINE_METRICS_WINDOW_HOURS``, the last 24 h by default), a task is
stale, or the spool inbox waits longer than a threshold; CRITICAL when
every active mailbox failed, no fetch succeeded for N schedule intervals, or the spool waits
longer than the larger threshold. Levels are exit codes: 0 healthy, 1 warning, 2 critical.

No Dagster imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from mail_pipeline.maintenance.health_thresholds import HealthThresholds
from mail_pipeline.maintenance.metrics import Metrics
from mail_pipeline.storage.store import MailboxStatus

__all__ = ["Finding", "HealthLevel", "HealthReport", "HealthThresholds", "evaluate"]

#: Failing mailboxes named in a finding; the rest are counted ("and 4 more").
MAX_NAMED_MAILBOXES = 5
#: An error text in a finding is cut to this many characters.
MAX_ERROR_CHARS = 80


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
class Finding:
    """One thing that is wrong: its level, the check that found it, and what it is in words."""

    level: HealthLevel
    #: a stable name of the check: ``mailboxes``, ``no_fetch``, ``failed_tasks``,
    #: ``stale_tasks``, ``spool_backlog`` or ``spool_failed``
    check: str
    text: str


@dataclass(frozen=True)
class HealthReport:
    """The verdict: the worst level found and the findings, worst first."""

    status: HealthLevel
    findings: tuple[Finding, ...] = field(default=())

    def message(self) -> str:
        """Return one line: ``HEALTHY``, or the status and every finding once, worst first
        (``CRITICAL: ...; ...``)."""
        if not self.findings:
            return self.status.name
        return f"{self.status.name}: " + "; ".join(f.text for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-serialisable data (status, exit code, message, findings)."""
        return {
            "status": self.status.label,
            "exit_code": int(self.status),
            "message": self.message(),
            "findings": [
                {"level": f.level.label, "check": f.check, "text": f.text} for f in self.findings
            ],
        }


def evaluate(metrics: Metrics, thresholds: HealthThresholds | None = None) -> HealthReport:
    """Return the health of ``metrics`` under ``thresholds`` (the defaults when None)."""
    t = thresholds or HealthThresholds()
    findings = [
        *_mailbox_findings(metrics, t),
        *_task_findings(metrics, t),
        *_spool_findings(metrics, t),
    ]
    findings.sort(key=lambda f: -f.level)  # stable: the rule order within a level
    status = max((f.level for f in findings), default=HealthLevel.HEALTHY)
    return HealthReport(HealthLevel(status), tuple(findings))


def _mailbox_findings(metrics: Metrics, t: HealthThresholds) -> list[Finding]:
    total = metrics.active_mailbox_count
    failing = metrics.failing_active_mailboxes
    found: list[Finding] = []
    if failing:
        every = len(failing) >= total
        names = ", ".join(_mailbox(m) for m in failing[:MAX_NAMED_MAILBOXES])
        more = len(failing) - MAX_NAMED_MAILBOXES
        found.append(
            Finding(
                HealthLevel.CRITICAL if every else HealthLevel.WARNING,
                "mailboxes",
                f"{len(failing)} of {total} {_plural(total, 'mailbox', 'mailboxes')} failed "
                f"their latest fetch: {names}" + (f" and {more} more" if more > 0 else ""),
            )
        )
        if every:  # "no fetch succeeded" would say the same thing again
            return found
    successes = [m.last_success_at for m in metrics.active_mailboxes if m.last_success_at]
    if t.missed_fetches_critical is not None and successes:
        age = (metrics.generated_at - max(successes)).total_seconds()
        limit = t.missed_fetches_critical * t.fetch_interval_seconds
        if age > limit:
            found.append(
                Finding(
                    HealthLevel.CRITICAL,
                    "no_fetch",
                    f"no mailbox fetch succeeded for {_duration(age)} (the limit is "
                    f"{t.missed_fetches_critical} fetch intervals of "
                    f"{_duration(t.fetch_interval_seconds)})",
                )
            )
    return found


def _task_findings(metrics: Metrics, t: HealthThresholds) -> list[Finding]:
    found: list[Finding] = []
    failed = metrics.failed_in_window
    if t.failed_tasks_warning is not None and failed >= t.failed_tasks_warning:
        found.append(
            Finding(
                HealthLevel.WARNING,
                "failed_tasks",
                f"{failed} {_plural(failed, 'task', 'tasks')} FAILED in the last "
                f"{metrics.window_hours} h",
            )
        )
    stale = metrics.timed_out
    if t.stale_tasks_warning is not None and stale >= t.stale_tasks_warning:
        found.append(
            Finding(
                HealthLevel.WARNING,
                "stale_tasks",
                f"{stale} {_plural(stale, 'task', 'tasks')} without a heartbeat within "
                "the timeout (see: mail-pipeline cleanup-stale)",
            )
        )
    return found


def _spool_findings(metrics: Metrics, t: HealthThresholds) -> list[Finding]:
    spool = metrics.spool
    if spool is None:
        return []
    found: list[Finding] = []
    age = spool.oldest_inbox_age_seconds
    if age is not None:
        level, limit = None, None
        if t.spool_critical_seconds is not None and age > t.spool_critical_seconds:
            level, limit = HealthLevel.CRITICAL, t.spool_critical_seconds
        elif t.spool_warning_seconds is not None and age > t.spool_warning_seconds:
            level, limit = HealthLevel.WARNING, t.spool_warning_seconds
        if level is not None and limit is not None:
            found.append(
                Finding(
                    level,
                    "spool_backlog",
                    f"spool backlog: {spool.inbox_ready} "
                    f"{_plural(spool.inbox_ready, 'message', 'messages')} in inbox/, the oldest "
                    f"waiting {_duration(age)} (more than {_duration(limit)})",
                )
            )
    if t.spool_failed_warning is not None and spool.failed >= t.spool_failed_warning:
        found.append(
            Finding(
                HealthLevel.WARNING,
                "spool_failed",
                f"{spool.failed} {_plural(spool.failed, 'message', 'messages')} in spool failed/",
            )
        )
    return found


def _mailbox(m: MailboxStatus) -> str:
    """``bob (auth: login refused, since 2026-12-03 10:02 UTC)``: the user, whether it is
    paused, its last error and since when it fails."""
    parts = []
    if m.paused:
        parts.append("paused")
    error = " ".join(m.last_error.split())
    if len(error) > MAX_ERROR_CHARS:
        error = error[: MAX_ERROR_CHARS - 1] + "…"
    if m.last_error_kind or error:
        parts.append(": ".join(p for p in (m.last_error_kind, error) if p))
    parts.append(_failing_since(m))
    return f"{m.username} ({', '.join(p for p in parts if p)})"


def _failing_since(m: MailboxStatus) -> str:
    """``since <the first failure of the current streak>``, or "" when it has none (a mailbox
    paused by hand without a failure)."""
    return "" if m.failing_since is None else f"since {_when(m.failing_since)}"


def _when(value: datetime) -> str:
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    minutes = s // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many
