"""The code location ``workspace.yaml`` loads: every job, schedule, sensor, asset and resource.

Built lazily by ``@dg.definitions``: the executor of ``email_fetch_job``
(``MAIL_PIPELINE_EXECUTOR``, see :mod:`mail_pipeline.defs.executors`), the fetch cron
(``MAIL_PIPELINE_FETCH_CRON``, default every 5 minutes), whether its runs cover every mailbox
partition (``MAIL_PIPELINE_FETCH_PARTITIONS``) and the retention cron
(``MAIL_PIPELINE_CLEANUP_CRON``, default 03:30 daily) are read
through :func:`mail_pipeline.platform.settings.load_settings` when Dagster loads the location,
not when the module is imported, and only here; the resources read the rest of the settings
when they are initialised.
"""

from __future__ import annotations

import dagster as dg

from mail_pipeline.defs.executors import build_executor
from mail_pipeline.defs.fetch.assets import fetched_mail_asset
from mail_pipeline.defs.fetch.jobs import build_email_fetch_job
from mail_pipeline.defs.fetch.schedules import DEFAULT_FETCH_CRON, build_fetch_schedule
from mail_pipeline.defs.fetch.sensors import fetch_run_canceled_sensor, fetch_run_failure_sensor
from mail_pipeline.defs.imap.assets import mailbox_last_fetch_ok, mailbox_spec
from mail_pipeline.defs.imap.jobs import fetch_mailbox_job
from mail_pipeline.defs.imap.sensors import mailbox_partitions_sensor
from mail_pipeline.defs.maintenance.assets import mail_metrics_spec
from mail_pipeline.defs.maintenance.jobs import cleanup_tasks_job
from mail_pipeline.defs.maintenance.schedules import DEFAULT_CLEANUP_CRON, build_cleanup_schedule
from mail_pipeline.defs.resources import build_resources
from mail_pipeline.defs.spool.jobs import spool_ingest_job
from mail_pipeline.defs.spool.sensors import haraka_spool_sensor
from mail_pipeline.platform.settings import load_settings


def build_definitions(
    fetch_cron: str = DEFAULT_FETCH_CRON,
    cleanup_cron: str = DEFAULT_CLEANUP_CRON,
    fetch_executor: dg.ExecutorDefinition = dg.in_process_executor,
    *,
    fetch_over_partitions: bool = True,
) -> dg.Definitions:
    """Return the definitions with the fetch schedule on ``fetch_cron`` (its runs over every
    mailbox partition when ``fetch_over_partitions``), the daily retention on
    ``cleanup_cron`` and ``email_fetch_job`` on ``fetch_executor``."""
    return dg.Definitions(
        assets=[mail_metrics_spec, mailbox_spec, fetched_mail_asset],
        asset_checks=[mailbox_last_fetch_ok],
        jobs=[
            build_email_fetch_job(fetch_executor),
            spool_ingest_job,
            fetch_mailbox_job,
            cleanup_tasks_job,
        ],
        schedules=[
            build_fetch_schedule(fetch_cron, over_partitions=fetch_over_partitions),
            build_cleanup_schedule(cleanup_cron),
        ],
        sensors=[
            haraka_spool_sensor,
            mailbox_partitions_sensor,
            fetch_run_failure_sensor,
            fetch_run_canceled_sensor,
        ],
        resources=build_resources(),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location's definitions, with the crons and the fetch executor of the settings
    read now."""
    settings = load_settings()
    return build_definitions(
        settings.fetch_cron or DEFAULT_FETCH_CRON,
        settings.cleanup_cron or DEFAULT_CLEANUP_CRON,
        build_executor(settings),
        fetch_over_partitions=settings.fetch_over_partitions,
    )
