"""The fetch schedule: every 5 minutes by default; skips while a live fetch lease exists.

Each run covers every mailbox partition (one range, as a single-run backfill does), so that
Dagster records, per mailbox, the run's attempt: the mailboxes that fail in it become the
``fetched_mail`` asset's failed partitions. With no partition yet, the run has none and
fetches every mailbox of the store.
"""

import dagster as dg

from mail_pipeline.defs.fetch.jobs import EMAIL_FETCH_JOB
from mail_pipeline.defs.imap.partitions import MAILBOX_PARTITIONS
from mail_pipeline.defs.resources import FETCH_LOCK, StoreResource
from mail_pipeline.defs.tags import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG


def every_mailbox(instance: dg.DagsterInstance) -> dict[str, str]:
    """Return the run tags of a run over every mailbox partition ({} when there is none)."""
    keys = instance.get_dynamic_partitions(MAILBOX_PARTITIONS)
    if not keys:
        return {}
    return {PARTITION_RANGE_START_TAG: keys[0], PARTITION_RANGE_END_TAG: keys[-1]}


DEFAULT_FETCH_CRON = "*/5 * * * *"


def build_fetch_schedule(
    cron: str = DEFAULT_FETCH_CRON, *, over_partitions: bool = True
) -> dg.ScheduleDefinition:
    """Return the ``email_fetch_schedule`` running ``email_fetch_job`` on ``cron``, each run
    over every mailbox partition (``over_partitions``) or without partitions."""

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
        return dg.RunRequest(tags=every_mailbox(context.instance) if over_partitions else {})

    return email_fetch_schedule
