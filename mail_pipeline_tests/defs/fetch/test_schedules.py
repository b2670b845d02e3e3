"""The fetch schedule skips while a live lease exists, and requests a run otherwise."""

from __future__ import annotations

import dagster as dg
import pytest

from mail_pipeline.defs.definitions import build_definitions
from mail_pipeline.defs.fetch.schedules import DEFAULT_FETCH_CRON, build_fetch_schedule
from mail_pipeline.defs.imap.partitions import MAILBOX_PARTITIONS
from mail_pipeline.defs.resources import FETCH_LOCK
from mail_pipeline.errors import ConfigError
from mail_pipeline.platform.settings import load_settings
from mail_pipeline_tests.defs.conftest import Rig


def test_requests_a_run_when_free_and_skips_while_locked(rig: Rig) -> None:
    schedule = build_fetch_schedule()
    assert schedule.cron_schedule == DEFAULT_FETCH_CRON
    resources = {"store": rig.resources["store"]}
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(instance=instance, resources=resources) as context,
    ):
        first = schedule.evaluate_tick(context)
    assert first.run_requests and len(first.run_requests) == 1
    rig.store.locks.acquire(FETCH_LOCK, 600, run_id="busy-run")
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(instance=instance, resources=resources) as context,
    ):
        skipped = schedule.evaluate_tick(context)
    assert not skipped.run_requests
    assert skipped.skip_message is not None and "busy-run" in skipped.skip_message


def test_the_cron_is_configurable() -> None:
    defs = build_definitions("*/2 * * * *")
    assert defs.get_schedule_def("email_fetch_schedule").cron_schedule == "*/2 * * * *"
    assert defs.get_job_def("email_fetch_job") is not None


def test_without_partitions_the_run_has_none(rig: Rig) -> None:
    schedule = build_fetch_schedule(over_partitions=False)
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(
            instance=instance, resources={"store": rig.resources["store"]}
        ) as context,
    ):
        instance.add_dynamic_partitions(MAILBOX_PARTITIONS, ["ann", "bob"])
        tick = schedule.evaluate_tick(context)
    assert tick.run_requests is not None
    (request,) = tick.run_requests
    assert "dagster/asset_partition_range_start" not in request.tags


def test_the_setting_turns_the_partitions_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAIL_PIPELINE_FETCH_PARTITIONS", "off")
    assert load_settings().fetch_over_partitions is False
    monkeypatch.setenv("MAIL_PIPELINE_FETCH_PARTITIONS", "ON")
    assert load_settings().fetch_over_partitions is True
    monkeypatch.setenv("MAIL_PIPELINE_FETCH_PARTITIONS", "sometimes")
    with pytest.raises(ConfigError, match="MAIL_PIPELINE_FETCH_PARTITIONS must be on or off"):
        assert load_settings().fetch_over_partitions
