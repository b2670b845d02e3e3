"""When a health check fires: :class:`HealthThresholds`, from the settings or given.

| check | setting | default | level |
| --- | --- | --- | --- |
| an active mailbox failed its latest fetch (or is paused) | — | any | warning |
| every active mailbox failed its latest fetch | — | all | critical |
| no mailbox fetch succeeded for N fetch schedule intervals | ``MISSED_FETCHES`` | 3 | critical |
| FAILED tasks in the metrics' window (the last 24 h) | ``FAILED_TASKS`` | at least 1 | warning |
| open tasks without a heartbeat within their timeout | ``STALE_TASKS`` | at least 1 | warning |
| the oldest spool inbox file is older than | ``SPOOL_WARNING_SECONDS`` | 1800 s | warning |
| the oldest spool inbox file is older than | ``SPOOL_CRITICAL_SECONDS`` | 7200 s | critical |
| messages waiting in spool ``failed/`` | ``SPOOL_FAILED`` | off | warning |

A setting ``NAME`` is the variable ``HEALTH_NAME`` with the ``MAIL_PIPELINE_`` prefix, a whole
number; ``0`` turns its check off. The window of FAILED tasks is the metrics' window,
``MAIL_PIPELINE_METRICS_WINDOW_HOURS`` (24 by default; the snapshot judged carries it, see
:attr:`~mail_pipeline.maintenance.metrics.Metrics.window_hours`). The fetch schedule
interval is the longest gap between two ticks of ``MAIL_PIPELINE_FETCH_CRON``
(:mod:`mail_pipeline.maintenance.cron_interval`).

No Dagster imports.
"""

from __future__ import annotations

from dataclasses import dataclass

from mail_pipeline.errors import ConfigError
from mail_pipeline.maintenance.cron_interval import DEFAULT_FETCH_CRON, schedule_interval_seconds
from mail_pipeline.platform.settings import ENV_PREFIX, HEALTH_DEFAULTS, Settings


@dataclass(frozen=True)
class HealthThresholds:
    """When each check fires; ``None`` turns a check off. The defaults are the settings'."""

    #: warning from this many FAILED tasks in the metrics' window (the last 24 h by default)
    failed_tasks_warning: int | None = HEALTH_DEFAULTS["FAILED_TASKS"]
    #: warning from this many open tasks whose heartbeat is older than their timeout
    stale_tasks_warning: int | None = HEALTH_DEFAULTS["STALE_TASKS"]
    #: critical when no active mailbox's fetch succeeded for this many fetch intervals
    missed_fetches_critical: int | None = HEALTH_DEFAULTS["MISSED_FETCHES"]
    #: the fetch schedule's interval in seconds (the longest gap between two of its ticks)
    fetch_interval_seconds: float = 300.0
    #: warning when the oldest spool inbox file is older than this (seconds)
    spool_warning_seconds: float | None = float(HEALTH_DEFAULTS["SPOOL_WARNING_SECONDS"])
    #: critical when the oldest spool inbox file is older than this (seconds)
    spool_critical_seconds: float | None = float(HEALTH_DEFAULTS["SPOOL_CRITICAL_SECONDS"])
    #: warning from this many messages in spool failed/
    spool_failed_warning: int | None = HEALTH_DEFAULTS["SPOOL_FAILED"] or None

    def __post_init__(self) -> None:
        for name in (
            "failed_tasks_warning",
            "stale_tasks_warning",
            "missed_fetches_critical",
            "spool_warning_seconds",
            "spool_critical_seconds",
            "spool_failed_warning",
        ):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None (off), got {value}")
        if self.fetch_interval_seconds <= 0:
            raise ValueError(
                f"fetch_interval_seconds must be positive, got {self.fetch_interval_seconds}"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> HealthThresholds:
        """Return the thresholds of ``settings`` (the ``HEALTH_`` settings, and the interval
        of ``MAIL_PIPELINE_FETCH_CRON`` or of the default fetch schedule).

        Raises:
            ConfigError: a threshold is not a whole number >= 0, or the fetch cron is invalid.
        """
        cron = settings.fetch_cron or DEFAULT_FETCH_CRON
        try:
            interval = schedule_interval_seconds(cron)
        except ValueError as exc:
            raise ConfigError(f"{ENV_PREFIX}FETCH_CRON: {exc}") from None

        def seconds(name: str) -> float | None:
            value = settings.health_threshold(name)
            return None if value is None else float(value)

        return cls(
            failed_tasks_warning=settings.health_threshold("FAILED_TASKS"),
            stale_tasks_warning=settings.health_threshold("STALE_TASKS"),
            missed_fetches_critical=settings.health_threshold("MISSED_FETCHES"),
            fetch_interval_seconds=interval,
            spool_warning_seconds=seconds("SPOOL_WARNING_SECONDS"),
            spool_critical_seconds=seconds("SPOOL_CRITICAL_SECONDS"),
            spool_failed_warning=settings.health_threshold("SPOOL_FAILED"),
        )
