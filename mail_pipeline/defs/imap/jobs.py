"""``fetch_mailbox_job``: one mailbox, chosen by the partition key (for backfills)."""

from __future__ import annotations

import dagster as dg

from mail_pipeline.defs.imap.ops import fetch_mailbox_partition
from mail_pipeline.defs.imap.partitions import mailbox_partitions
from mail_pipeline.defs.tags import JOB_TAG


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
