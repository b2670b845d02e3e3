"""The spool ops: the spool branch of ``email_fetch_job`` and the sensor-started ingest.

Each wires the resources to :func:`mail_pipeline.intake.spool.run.run_ingest` and turns its
result into log lines and metadata; the sensor-started ingest also records a ``mail_metrics``
point (the fetch job's is recorded by its last op). The failure model is in
:mod:`mail_pipeline.defs.fetch.ops`.
"""

import dagster as dg

from mail_pipeline.defs.fetch.ops import BranchSummary
from mail_pipeline.defs.maintenance.assets import materialize_mail_metrics
from mail_pipeline.defs.resources import AttachmentsResource, SpoolResource, StoreResource
from mail_pipeline.errors import LeaseLostError
from mail_pipeline.intake.spool.run import SpoolRun, run_ingest
from mail_pipeline.maintenance.metrics import SpoolMetrics, spool_metrics
from mail_pipeline.storage.store import LockGrant


def _ingest(
    context: dg.OpExecutionContext,
    store: StoreResource,
    attachments: AttachmentsResource,
    spool: SpoolResource,
    lock: LockGrant | None = None,
    *,
    measure: bool = False,
) -> SpoolRun:
    """Run one pass (see :func:`run_ingest`); log its warnings, record its metadata.

    Raises:
        dg.Failure: another run holds the lease (not retried).
    """

    def status() -> SpoolMetrics:
        return spool_metrics(spool.directory)

    try:
        run = run_ingest(
            spool.ingest_service(store.get(), attachments.storage()),
            run_id=context.run_id,
            lease=lock,
            measure=status if measure else None,
        )
    except LeaseLostError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc
    for line in run.warnings:
        context.log.warning(line)
    context.add_output_metadata(run.metadata())
    return run


@dg.op
def ingest_spool(
    context: dg.OpExecutionContext,
    store: StoreResource,
    attachments: AttachmentsResource,
    spool: SpoolResource,
    lock: LockGrant,
) -> BranchSummary:
    """Ingest the Haraka spool under a HARAKA_EMAIL_FETCH task of its own."""
    run = _ingest(context, store, attachments, spool, lock, measure=True)
    return BranchSummary(
        "haraka", run.result.task_id or "", run.result.counters, spool_status=run.status
    )


@dg.op
def ingest_spool_now(
    context: dg.OpExecutionContext,
    store: StoreResource,
    attachments: AttachmentsResource,
    spool: SpoolResource,
) -> None:
    """Ingest the spool (the sensor's job: claims make it safe beside a running fetch), then
    record a ``mail_metrics`` point, as the fetch job does."""
    run = _ingest(context, store, attachments, spool, measure=True)
    materialize_mail_metrics(
        context,
        store.get(),
        spool_status=run.status,
        spool_dir=None if run.status is not None else spool.directory,
    )
