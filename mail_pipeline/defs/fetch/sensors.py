"""Run-status sensors of the fetch jobs: a failed or cancelled run's tasks closed, lease freed."""

from collections.abc import Mapping

import dagster as dg

from mail_pipeline.defs.fetch.assets import fetch_step
from mail_pipeline.defs.fetch.jobs import email_fetch_job
from mail_pipeline.defs.imap.jobs import fetch_mailbox_job
from mail_pipeline.defs.resources import FETCH_LOCK, StoreResource
from mail_pipeline.defs.spool.jobs import spool_ingest_job
from mail_pipeline.maintenance.stale_tasks import close_tasks_of_run

#: The jobs whose runs open EmailTasks (and may hold the fetch lease).
MONITORED_JOBS = (email_fetch_job, spool_ingest_job, fetch_mailbox_job)


@dg.run_failure_sensor(
    name="fetch_run_failure_sensor",
    monitored_jobs=list(MONITORED_JOBS),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks the EmailTasks of a failed run FAILED and frees its fetch lease.",
)
def fetch_run_failure_sensor(context: dg.RunFailureSensorContext, store: StoreResource) -> None:
    """Close the open tasks of the failed run and release its lease; log what failed."""
    run = context.dagster_run
    reason = context.failure_event.message or "run failed"
    closed = close_tasks_of_run(
        store.get(), run.run_id, failed=True, reason=reason, lock_name=FETCH_LOCK
    )
    failed_steps = sorted({e.step_key for e in context.get_step_failure_events() if e.step_key})
    mailboxes = failing_mailboxes(run.job_name, run.tags, failed_steps)
    context.log.error(
        f"{run.job_name} run {run.run_id} failed ({', '.join(failed_steps) or 'no step'})"
        + (f" for mailbox(es) {', '.join(mailboxes)}" if mailboxes else "")
        + f": {reason}; closed {len(closed)} task(s) and freed its fetch lease"
    )


def failing_mailboxes(job_name: str, tags: Mapping[str, str], failed_steps: list[str]) -> list[str]:
    """Return what a failed run was fetching: the partition of a fetch_mailbox_job run, or
    the shards (``shard_0003``) of failed ``fetch_mailbox_shard[...]`` steps (their mailboxes
    are in the step's metadata and each mailbox's state)."""
    if job_name == fetch_mailbox_job.name:
        partition = tags.get("dagster/partition")
        return [partition] if partition else []
    shard = fetch_step("fetch_mailbox_shard") + "["
    return [
        step[len(shard) : -1]
        for step in failed_steps
        if step.startswith(shard) and step.endswith("]")
    ]


@dg.run_status_sensor(
    name="fetch_run_canceled_sensor",
    run_status=dg.DagsterRunStatus.CANCELED,
    monitored_jobs=list(MONITORED_JOBS),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks the EmailTasks of a cancelled run CANCELLED and frees its fetch lease.",
)
def fetch_run_canceled_sensor(context: dg.RunStatusSensorContext, store: StoreResource) -> None:
    """Close the open tasks of the cancelled run and release its lease."""
    run = context.dagster_run
    closed = close_tasks_of_run(
        store.get(), run.run_id, failed=False, reason="run was cancelled", lock_name=FETCH_LOCK
    )
    context.log.info(f"run {run.run_id} cancelled: closed {len(closed)} task(s)")
