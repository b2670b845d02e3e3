"""``cleanup_tasks_job``: retention of tasks, spool files and unreferenced attachments."""

from __future__ import annotations

import dagster as dg

from mail_pipeline.defs.maintenance.ops import apply_retention
from mail_pipeline.defs.tags import JOB_TAG


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
