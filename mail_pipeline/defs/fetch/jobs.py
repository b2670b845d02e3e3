"""``email_fetch_job``: the scheduled unified fetch over both branches, under the fetch lock.

Each job carries a :data:`~mail_pipeline.defs.tags.JOB_TAG` tag; ``dagster.yaml``'s run queue
lets one run per tag value at a time, a second guard beside the fetch lease.
"""

from __future__ import annotations

import dagster as dg

from mail_pipeline.defs.fetch.ops import (
    acquire_fetch_lock,
    cleanup_stale_tasks_op,
    release_fetch_lock,
    report_failed_mailboxes,
)
from mail_pipeline.defs.imap.ops import close_imap_fetch, fetch_mailbox_shard, plan_imap_fetch
from mail_pipeline.defs.spool.ops import ingest_spool
from mail_pipeline.defs.tags import JOB_TAG

#: The job's name, the same on every executor (schedules and sensors refer to it by name).
EMAIL_FETCH_JOB = "email_fetch_job"


@dg.graph
def email_fetch() -> None:
    """Lock → stale-task cleanup → IMAP fan-out per shard of mailboxes and spool ingest →
    release → the verdict on failed mailboxes (fails the run when any failed)."""
    lock = cleanup_stale_tasks_op(acquire_fetch_lock())
    shards, task = plan_imap_fetch(lock)
    imap = close_imap_fetch(task, shards.map(fetch_mailbox_shard).collect())
    spool = ingest_spool(lock)
    report_failed_mailboxes(imap, after=release_fetch_lock(lock, imap, spool))


def build_email_fetch_job(
    executor_def: dg.ExecutorDefinition = dg.in_process_executor,
) -> dg.JobDefinition:
    """Return ``email_fetch_job`` on ``executor_def`` (see :mod:`mail_pipeline.defs.executors`).

    The default is in-process: a shard step fetches its mailboxes in a thread pool, and each
    further step process costs more than it saves until one core is busy (README, "Sizing").
    """
    return email_fetch.to_job(
        name=EMAIL_FETCH_JOB,
        description="Fetch every IMAP mailbox and ingest the Haraka spool, under the fetch lock.",
        executor_def=executor_def,
        tags={JOB_TAG: "email_fetch"},
    )


email_fetch_job = build_email_fetch_job()
