"""Jobs: the scheduled unified fetch, the spool ingest the sensor starts, and one mailbox.

Each job carries a ``mail_pipeline/job`` tag; ``dagster.yaml``'s run queue lets one run per tag
value at a time, a second guard beside the fetch lease.
"""

from __future__ import annotations

import dagster as dg

from mail_pipeline.defs.ops import (
    acquire_fetch_lock,
    cleanup_stale_tasks_op,
    close_imap_fetch,
    fetch_mailbox,
    fetch_mailbox_partition,
    ingest_spool,
    ingest_spool_now,
    plan_imap_fetch,
    release_fetch_lock,
)
from mail_pipeline.defs.partitions import mailbox_partitions

JOB_TAG = "mail_pipeline/job"


@dg.graph
def email_fetch() -> None:
    """Lock → stale-task cleanup → IMAP fan-out per mailbox and spool ingest → release."""
    lock = cleanup_stale_tasks_op(acquire_fetch_lock())
    mailboxes, task = plan_imap_fetch(lock)
    imap = close_imap_fetch(task, mailboxes.map(fetch_mailbox).collect())
    spool = ingest_spool(lock)
    release_fetch_lock(lock, imap, spool)


# In-process: the 200-mailbox fan-out costs ~16 s of step overhead in-process against
# ~85 s with forkserver and minutes with spawn (see README, "Choosing the executor").
email_fetch_job = email_fetch.to_job(
    name="email_fetch_job",
    description="Fetch every IMAP mailbox and ingest the Haraka spool, under the fetch lock.",
    executor_def=dg.in_process_executor,
    tags={JOB_TAG: "email_fetch"},
)


@dg.graph
def spool_ingest() -> None:
    """Ingest the Haraka spool once."""
    ingest_spool_now()


spool_ingest_job = spool_ingest.to_job(
    name="spool_ingest_job",
    description="Ingest the Haraka spool (started by haraka_spool_sensor).",
    executor_def=dg.in_process_executor,
    tags={JOB_TAG: "spool_ingest"},
)


@dg.graph
def mailbox_fetch() -> None:
    """Fetch one mailbox, chosen by the partition key."""
    fetch_mailbox_partition()


fetch_mailbox_job = mailbox_fetch.to_job(
    name="fetch_mailbox_job",
    description="Fetch one user's mailbox (partitioned by mailbox, for backfills).",
    executor_def=dg.in_process_executor,
    partitions_def=mailbox_partitions,
    tags={JOB_TAG: "fetch_mailbox"},
)
