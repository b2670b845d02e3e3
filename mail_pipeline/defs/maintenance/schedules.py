"""``cleanup_tasks_schedule``: the daily retention (``MAIL_PIPELINE_CLEANUP_CRON``)."""

from __future__ import annotations

import dagster as dg

from mail_pipeline.defs.maintenance.jobs import cleanup_tasks_job

DEFAULT_CLEANUP_CRON = "30 3 * * *"


def build_cleanup_schedule(cron: str = DEFAULT_CLEANUP_CRON) -> dg.ScheduleDefinition:
    """Return ``cleanup_tasks_schedule`` running ``cleanup_tasks_job`` on ``cron`` (UTC)."""
    return dg.ScheduleDefinition(
        name="cleanup_tasks_schedule",
        cron_schedule=cron,
        job=cleanup_tasks_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily retention: old tasks (audited), spool files, orphan attachments.",
    )
