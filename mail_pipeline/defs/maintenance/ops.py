"""Maintenance in Dagster: ``cleanup_tasks_job``, its daily schedule, the ``mail_metrics`` asset.

* ``cleanup_tasks_job`` runs :func:`mail_pipeline.maintenance.retention.run_retention` with a
  :class:`RetentionConfig` (the seed's defaults; change them in the launchpad or in the
  schedule's run config). Its output metadata says what was deleted; it never touches open
  tasks. ``cleanup_tasks_schedule`` runs it daily (``MAIL_PIPELINE_CLEANUP_CRON``, default
  ``30 3 * * *``).
* ``mail_metrics`` is an asset (declared with :data:`mail_metrics_spec`) materialized by the
  last op of every ``email_fetch_job`` run and of every ``cleanup_tasks_job`` run, through an
  ``AssetMaterialization`` whose metadata is :meth:`Metrics.numeric`: all numbers, so the
  asset's page in the UI plots each of them over time.
"""


from pathlib import Path

import dagster as dg
from pydantic import Field

from mail_pipeline.defs.resources import AttachmentsResource, SpoolResource, StoreResource
from mail_pipeline.maintenance.metrics import SpoolMetrics, compute_metrics
from mail_pipeline.maintenance.retention import DEFAULT_BATCH_SIZE, RetentionPolicy, run_retention
from mail_pipeline.storage.store import MailStore

JOB_TAG = "mail_pipeline/job"
DEFAULT_CLEANUP_CRON = "30 3 * * *"
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
    context.log_event(dg.AssetMaterialization(
        asset_key=MAIL_METRICS, metadata=dict(numbers),
        description=f"{numbers['total_tasks']} tasks, {numbers['mailboxes_paused']} paused "
                    f"mailboxes",
    ))
    return numbers


class RetentionConfig(dg.Config):
    """Retention settings of one ``cleanup_tasks_job`` run (days may be fractional)."""

    completed_days: float | None = Field(default=1.0, description="keep COMPLETED tasks")
    failed_days: float | None = Field(default=7.0, description="keep FAILED tasks")
    cancelled_days: float | None = Field(default=1.0, description="keep CANCELLED tasks")
    skipped_days: float | None = Field(default=1.0, description="keep SKIPPED tasks")
    processed_days: float | None = Field(default=7.0, description="keep spool processed/")
    failed_spool_days: float | None = Field(default=30.0, description="keep spool failed/")
    unmatched_days: float | None = Field(default=30.0, description="keep spool unmatched/")
    attachment_grace_seconds: float = Field(
        default=3600.0, description="never remove an unreferenced file younger than this")
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, description="tasks per transaction")
    max_batches: int | None = Field(default=None, description="stop after this many batches")
    dry_run: bool = Field(default=False, description="report what would go; delete nothing")
    clean_spool: bool = Field(default=True, description="apply spool retention")
    clean_attachments: bool = Field(default=True, description="remove unreferenced files")

    def policy(self) -> RetentionPolicy:
        """Return the retention policy (raises ValueError on a negative value)."""
        return RetentionPolicy(
            completed_days=self.completed_days, failed_days=self.failed_days,
            cancelled_days=self.cancelled_days, skipped_days=self.skipped_days,
            processed_days=self.processed_days, failed_spool_days=self.failed_spool_days,
            unmatched_days=self.unmatched_days,
            attachment_grace_seconds=self.attachment_grace_seconds, batch_size=self.batch_size,
        )


@dg.op(name="apply_retention")
def apply_retention(
    context: dg.OpExecutionContext,
    config: RetentionConfig,
    store: StoreResource,
    spool: SpoolResource,
    attachments: AttachmentsResource,
) -> None:
    """Delete what is past retention (tasks audited, in batches); metadata says what went."""
    mail = store.get()
    report = run_retention(
        mail, config.policy(),
        spool_dir=spool.directory if config.clean_spool else None,
        attachment_root=attachments.root if config.clean_attachments else None,
        dry_run=config.dry_run, max_batches=config.max_batches,
        on_batch=lambda counts: context.log.info(
            "deleted a batch: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))),
    )
    context.log.info(report.summary())
    context.add_output_metadata(report.metadata())
    materialize_mail_metrics(context, mail, spool_dir=spool.directory)


@dg.graph
def cleanup_tasks() -> None:
    """Retention of tasks (with audit), spool files and unreferenced attachments."""
    apply_retention()


cleanup_tasks_job = cleanup_tasks.to_job(
    name="cleanup_tasks_job",
    description="Delete finished EmailTasks past retention (audited), old spool files and "
                "unreferenced attachment files. Never touches PENDING/RUNNING tasks.",
    executor_def=dg.in_process_executor,
    tags={JOB_TAG: "cleanup_tasks"},
)


def build_cleanup_schedule(cron: str = DEFAULT_CLEANUP_CRON) -> dg.ScheduleDefinition:
    """Return ``cleanup_tasks_schedule`` running ``cleanup_tasks_job`` on ``cron`` (UTC)."""
    return dg.ScheduleDefinition(
        name="cleanup_tasks_schedule",
        cron_schedule=cron,
        job=cleanup_tasks_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily retention: old tasks (audited), spool files, orphan attachments.",
    )
