"""cleanup_tasks_schedule and the mail_metrics asset in the code location's definitions."""

from __future__ import annotations

from mail_pipeline.defs.definitions import build_definitions
from mail_pipeline.defs.maintenance.assets import MAIL_METRICS


def test_definitions_hold_the_job_schedule_and_asset() -> None:
    defs = build_definitions(cleanup_cron="15 2 * * *")
    assert defs.resolve_job_def("cleanup_tasks_job") is not None
    schedule = defs.resolve_schedule_def("cleanup_tasks_schedule")
    assert schedule.cron_schedule == "15 2 * * *"
    assert schedule.job_name == "cleanup_tasks_job"
    assert MAIL_METRICS in {spec.key for spec in defs.resolve_all_asset_specs()}
