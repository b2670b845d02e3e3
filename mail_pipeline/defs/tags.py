"""Tags every job of the code location carries."""

from __future__ import annotations

#: One value per job; ``dagster.yaml``'s run queue lets one run per value at a time, a second
#: guard beside the fetch lease.
JOB_TAG = "mail_pipeline/job"
