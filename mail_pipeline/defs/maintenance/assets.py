"""The ``mail_metrics`` asset: declared here, materialized by the last op of the fetch and
cleanup runs (its numeric metadata is what the UI plots over time)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mail_pipeline.maintenance.metrics import SpoolMetrics, compute_metrics
from mail_pipeline.storage.store import MailStore

MAIL_METRICS = dg.AssetKey("mail_metrics")

mail_metrics_spec = dg.AssetSpec(
    MAIL_METRICS,
    description=(
        "Task, throughput, spool and mailbox metrics of the mail pipeline, recorded by every "
        "email_fetch_job and cleanup_tasks_job run (Overview → Metadata → Plots)."
    ),
    group_name="monitoring",
    kinds={"python"},
)


def materialize_mail_metrics(
    context: dg.OpExecutionContext,
    store: MailStore,
    *,
    spool_dir: str | Path | None = None,
    spool_status: SpoolMetrics | None = None,
) -> dict[str, float | int] | None:
    """Compute the metrics and log them as a ``mail_metrics`` materialization.

    The spool part is read from ``spool_dir``, or taken as measured (``spool_status``).
    Never fails the run: a metrics error is logged as a warning.

    Returns:
        The numeric metrics logged, or None when they could not be computed.
    """
    try:
        numbers = compute_metrics(store, spool_dir=spool_dir, spool=spool_status).numeric()
    except Exception as exc:  # the metrics are a report; the run's work is already done
        context.log.warning(f"mail_metrics not recorded: {type(exc).__name__}: {exc}")
        return None
    context.log_event(
        dg.AssetMaterialization(
            asset_key=MAIL_METRICS,
            metadata=dict(numbers),
            description=f"{numbers['total_tasks']} tasks, {numbers['mailboxes_paused']} paused "
            f"mailboxes",
        )
    )
    return numbers
