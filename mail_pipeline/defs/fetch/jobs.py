"""``email_fetch_job``: the scheduled unified fetch over both branches, under the fetch lock.

It is the job of the ``fetched_mail`` asset (:mod:`mail_pipeline.defs.fetch.assets`), whose
computation is the fetch graph. The schedule runs it over every mailbox partition; a backfill
of some partitions fetches those mailboxes; a run with no partition (no mailbox yet, or
launched without one) fetches every mailbox of the store.

Each job carries a :data:`~mail_pipeline.defs.tags.JOB_TAG` tag; ``dagster.yaml``'s run queue
lets one run per tag value at a time, a second guard beside the fetch lease.
"""

from __future__ import annotations

import dagster as dg

from mail_pipeline.defs.fetch.assets import fetched_mail_asset
from mail_pipeline.defs.imap.health import FETCHED_MAIL
from mail_pipeline.defs.resources import build_resources
from mail_pipeline.defs.tags import JOB_TAG

#: The job's name, the same on every executor (schedules and sensors refer to it by name).
EMAIL_FETCH_JOB = "email_fetch_job"


def build_email_fetch_job(
    executor_def: dg.ExecutorDefinition = dg.in_process_executor, name: str = EMAIL_FETCH_JOB
) -> dg.JobDefinition:
    """Return ``email_fetch_job`` on ``executor_def`` (see :mod:`mail_pipeline.defs.executors`),
    named ``name`` (another name only for a benchmark's variant).

    The default is in-process: a shard step fetches its mailboxes in a thread pool, and each
    further step process costs more than it saves until one core is busy (README, "Sizing").
    """
    job = dg.define_asset_job(
        name,
        selection=dg.AssetSelection.assets(FETCHED_MAIL),
        description="Fetch every IMAP mailbox and ingest the Haraka spool, under the fetch lock.",
        executor_def=executor_def,
        tags={JOB_TAG: "email_fetch"},
    )
    # resolved against the asset now, so that the job can be run directly (tests, benches)
    # and handed to the code location as it is
    return dg.Definitions(
        assets=[fetched_mail_asset], jobs=[job], resources=build_resources()
    ).resolve_job_def(name)


email_fetch_job = build_email_fetch_job()
