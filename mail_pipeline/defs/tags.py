"""Tags every job of the code location carries."""

from __future__ import annotations

#: One value per job; ``dagster.yaml``'s run queue lets one run per value at a time, a second
#: guard beside the fetch lease.
JOB_TAG = "mail_pipeline/job"

#: Dagster's run tags of a partition range (what a single-run backfill sets): a run of
#: ``email_fetch_job`` over the mailboxes from the first to the last partition.
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"
#: Dagster's tag on the runs of a backfill (its id).
BACKFILL_TAG = "dagster/backfill"
