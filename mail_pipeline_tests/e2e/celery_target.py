"""The job the Celery end-to-end test runs, as the code location builds it.

A module-level function, so that :func:`dagster.reconstructable` can point the Celery workers
at it: each worker imports this module and builds the job again from its own environment,
where ``MAIL_PIPELINE_EXECUTOR=celery`` selects the Celery executor.
"""

from __future__ import annotations

import dagster as dg

from mail_pipeline.defs.definitions import defs
from mail_pipeline.defs.fetch.jobs import EMAIL_FETCH_JOB


def location_email_fetch_job() -> dg.JobDefinition:
    """Return ``email_fetch_job`` of the code location loaded from the environment now."""
    return defs().get_job_def(EMAIL_FETCH_JOB)
