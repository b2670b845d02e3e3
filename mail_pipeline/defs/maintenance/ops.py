"""``apply_retention``: the op of ``cleanup_tasks_job``, and its run config."""

import dagster as dg
from pydantic import Field

from mail_pipeline.defs.maintenance.assets import materialize_mail_metrics
from mail_pipeline.defs.resources import AttachmentsResource, SpoolResource, StoreResource
from mail_pipeline.maintenance.retention import run_retention
from mail_pipeline.maintenance.retention_policy import DEFAULT_BATCH_SIZE, RetentionPolicy


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
        default=3600.0, description="never remove an unreferenced file younger than this"
    )
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, description="tasks per transaction")
    max_batches: int | None = Field(default=None, description="stop after this many batches")
    dry_run: bool = Field(default=False, description="report what would go; delete nothing")
    clean_spool: bool = Field(default=True, description="apply spool retention")
    clean_attachments: bool = Field(default=True, description="remove unreferenced files")

    def policy(self) -> RetentionPolicy:
        """Return the retention policy (raises ValueError on a negative value)."""
        return RetentionPolicy(
            completed_days=self.completed_days,
            failed_days=self.failed_days,
            cancelled_days=self.cancelled_days,
            skipped_days=self.skipped_days,
            processed_days=self.processed_days,
            failed_spool_days=self.failed_spool_days,
            unmatched_days=self.unmatched_days,
            attachment_grace_seconds=self.attachment_grace_seconds,
            batch_size=self.batch_size,
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
        mail,
        config.policy(),
        spool_dir=spool.directory if config.clean_spool else None,
        attachment_root=attachments.root if config.clean_attachments else None,
        dry_run=config.dry_run,
        max_batches=config.max_batches,
        on_batch=lambda counts: context.log.info(
            "deleted a batch: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        ),
    )
    context.log.info(report.summary())
    context.add_output_metadata(report.metadata())
    materialize_mail_metrics(context, mail, spool_dir=spool.directory)
