"""The fetch schedule: every 5 minutes by default; skips while a live fetch lease exists."""

import dagster as dg

from mail_pipeline.defs.fetch.jobs import EMAIL_FETCH_JOB
from mail_pipeline.defs.resources import FETCH_LOCK, StoreResource

DEFAULT_FETCH_CRON = "*/5 * * * *"


def build_fetch_schedule(cron: str = DEFAULT_FETCH_CRON) -> dg.ScheduleDefinition:
    """Return the ``email_fetch_schedule`` running ``email_fetch_job`` on ``cron``."""

    @dg.schedule(
        name="email_fetch_schedule",
        cron_schedule=cron,
        # By name: the location builds the job on the executor of its settings.
        job_name=EMAIL_FETCH_JOB,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Fetch IMAP mailboxes and the spool; skipped while a fetch holds the lock.",
    )
    def email_fetch_schedule(
        context: dg.ScheduleEvaluationContext, store: StoreResource
    ) -> dg.RunRequest | dg.SkipReason:
        lease = store.get().locks.live(FETCH_LOCK)
        if lease is not None:
            return dg.SkipReason(
                f"run {lease.run_id} holds the fetch lock until {lease.expires_at.isoformat()}"
            )
        return dg.RunRequest()

    return email_fetch_schedule
