"""The ``mail_metrics`` asset: declared here, materialized by every run that moves mail (the
fetch job's last op, the spool job) and by the cleanup job.

Each materialization is one point of the series of
:mod:`mail_pipeline.maintenance.metric_points` (the numbers the UI plots over time, ordered
and with their units in their keys), the running totals of its counters (so the next point can
take the difference), and the health verdict of :mod:`mail_pipeline.maintenance.health`.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mail_pipeline.errors import ConfigError
from mail_pipeline.maintenance.health import HealthThresholds, evaluate
from mail_pipeline.maintenance.metric_points import (
    MetricPoint,
    PreviousPoint,
    legend,
    messages_saved,
    next_point,
    readings,
)
from mail_pipeline.maintenance.metrics import SpoolMetrics, compute_metrics
from mail_pipeline.platform.settings import DEFAULT_METRICS_WINDOW_HOURS, load_settings
from mail_pipeline.storage.store import MailStore

MAIL_METRICS = dg.AssetKey("mail_metrics")
#: The metadata entry holding the counters' running totals (JSON: not plotted).
TOTALS_KEY = "counter totals"
#: The metadata entry holding the health message (text: not plotted).
HEALTH_KEY = "health"
#: The store lease held while a point is read, computed and logged, so that two runs finishing
#: at once do not both take their deltas from the same previous point (one would count twice).
RECORDING_LOCK = "mail_metrics_point"
#: Seconds that lease lives if its holder dies before releasing it.
RECORDING_LOCK_TTL = 120.0

mail_metrics_spec = dg.AssetSpec(
    MAIL_METRICS,
    description=(
        "Mailbox, task, spool and throughput metrics of the mail pipeline: one point per "
        "email_fetch_job, spool_ingest_job and cleanup_tasks_job run (Overview → Plots). "
        "Counters are per interval (since the previous point); a series that has only ever "
        "been 0 is not shown. N h is the window of MAIL_PIPELINE_METRICS_WINDOW_HOURS "
        "(24 by default).\n\n" + legend(None)
    ),
    group_name="monitoring",
    kinds={"python"},
)


def previous_point(
    instance: dg.DagsterInstance, window_hours: int = DEFAULT_METRICS_WINDOW_HOURS
) -> PreviousPoint | None:
    """Return what the latest ``mail_metrics`` materialization says the next point (of the
    series of ``window_hours``) needs, or None when there is none."""
    entry = instance.get_latest_materialization_event(MAIL_METRICS)
    mat = None if entry is None else entry.asset_materialization
    if mat is None:
        return None
    totals = mat.metadata.get(TOTALS_KEY)
    data = totals.data if isinstance(totals, dg.JsonMetadataValue) else {}
    return PreviousPoint.from_metadata(
        set(mat.metadata), data if isinstance(data, dict) else {}, window_hours
    )


def materialize_mail_metrics(
    context: dg.OpExecutionContext,
    store: MailStore,
    *,
    spool_dir: str | Path | None = None,
    spool_status: SpoolMetrics | None = None,
) -> MetricPoint | None:
    """Compute the metrics and the health, and log them as a ``mail_metrics`` materialization.

    The spool part is read from ``spool_dir``, or taken as measured (``spool_status``).
    Never fails the run: a metrics error is logged as a warning.

    One run records at a time (the lease :data:`RECORDING_LOCK`); a run that finds another
    recording skips its point, and the next point's counter deltas include its work.

    Returns:
        The point logged, or None when the metrics could not be computed or another run was
        recording a point.
    """
    settings = load_settings()
    try:
        thresholds: HealthThresholds | None = HealthThresholds.from_settings(settings)
    except ConfigError as exc:
        context.log.warning(f"health thresholds: {exc}; judging with the defaults")
        thresholds = None
    try:
        window_hours = settings.metrics_window_hours
    except ConfigError as exc:
        context.log.warning(f"metrics window: {exc}; counting the default window")
        window_hours = DEFAULT_METRICS_WINDOW_HOURS
    try:
        token = store.locks.acquire(
            RECORDING_LOCK,
            RECORDING_LOCK_TTL,
            run_id=context.run_id,
            owner_info="mail_metrics point",
        )
    except Exception as exc:  # a report: never fails the run
        context.log.warning(f"mail_metrics not recorded: {type(exc).__name__}: {exc}")
        return None
    if token is None:
        # the counters are running totals: the next point's deltas include this run's work
        context.log.info("mail_metrics: another run is recording a point now; skipped this one")
        return None
    try:
        return _record_point(context, store, thresholds, window_hours, spool_dir, spool_status)
    finally:
        store.locks.release(RECORDING_LOCK, token)


def _record_point(
    context: dg.OpExecutionContext,
    store: MailStore,
    thresholds: HealthThresholds | None,
    window_hours: int,
    spool_dir: str | Path | None,
    spool_status: SpoolMetrics | None,
) -> MetricPoint | None:
    """Compute and log one point after the latest one (the caller holds the recording lease)."""
    try:
        previous = previous_point(context.instance, window_hours)
        metrics = compute_metrics(
            store, spool_dir=spool_dir, spool=spool_status, window_hours=window_hours
        )
        saved = messages_saved(store, previous)
        point = next_point(readings(metrics, saved), previous, saved.marks, window_hours)
    except Exception as exc:  # the metrics are a report; the run's work is already done
        context.log.warning(f"mail_metrics not recorded: {type(exc).__name__}: {exc}")
        return None
    health = evaluate(metrics, thresholds).message()
    context.log_event(
        dg.AssetMaterialization(
            asset_key=MAIL_METRICS,
            metadata={
                **point.values,
                TOTALS_KEY: dg.MetadataValue.json(point.totals),
                HEALTH_KEY: dg.MetadataValue.text(health),
            },
            description=health,
        )
    )
    return point
