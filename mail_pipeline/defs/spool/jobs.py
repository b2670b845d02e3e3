"""``spool_ingest_job``: one spool ingest, started by ``haraka_spool_sensor``."""

from __future__ import annotations

import dagster as dg

from mail_pipeline.defs.spool.ops import ingest_spool_now
from mail_pipeline.defs.tags import JOB_TAG


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
