"""The run-status sensors of the fetch jobs, through Dagster's public test helpers."""

from __future__ import annotations

import dagster as dg

from mail_pipeline.defs.fetch.assets import fetch_step
from mail_pipeline.defs.fetch.jobs import email_fetch_job
from mail_pipeline.defs.fetch.sensors import failing_mailboxes, fetch_run_failure_sensor
from mail_pipeline.defs.resources import FETCH_LOCK
from mail_pipeline.storage.store import EmailSource, TaskStatus
from mail_pipeline_tests.defs.conftest import Rig


def test_run_failure_sensor_closes_tasks_and_frees_the_lease(rig: Rig) -> None:
    instance = dg.DagsterInstance.ephemeral()
    # A real failed run of email_fetch_job: the spool inbox is a file, so ingest_spool raises.
    inbox = rig.spool_dir / "inbox"
    inbox.rmdir()
    inbox.write_text("not a directory")
    result = email_fetch_job.execute_in_process(
        resources=rig.resources, instance=instance, raise_on_error=False
    )
    assert not result.success
    # The failed branch skipped release_fetch_lock: the lease is still held until the
    # run-failure sensor frees it and closes what the run left open.
    assert rig.store.locks.get(FETCH_LOCK) is not None
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    failure = next(
        e
        for e in result.all_events
        if e.event_type_value == "PIPELINE_FAILURE" or e.event_type_value == "RUN_FAILURE"
    )
    with dg.build_run_status_sensor_context(
        sensor_name="fetch_run_failure_sensor",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=failure,
        resources={"store": rig.resources["store"]},
    ) as context:
        fetch_run_failure_sensor(context.for_run_failure())
    assert rig.store.locks.get(FETCH_LOCK) is None
    tasks = rig.store.tasks.recent(run_id=result.run_id)
    assert {t.email_source for t in tasks} == {EmailSource.IMAP, EmailSource.HARAKA}
    assert all(t.status.is_final for t in tasks)
    haraka = next(t for t in tasks if t.email_source is EmailSource.HARAKA)
    assert haraka.status is TaskStatus.FAILED


def test_failure_message_names_the_mailboxes() -> None:
    assert failing_mailboxes("fetch_mailbox_job", {"dagster/partition": "erin"}, []) == ["erin"]
    assert failing_mailboxes(
        "email_fetch_job",
        {},
        [
            fetch_step("fetch_mailbox_shard[shard_0000]"),
            "ingest_spool",
            fetch_step("fetch_mailbox_shard[shard_0002]"),
        ],
    ) == ["shard_0000", "shard_0002"]
    assert failing_mailboxes("spool_ingest_job", {}, ["ingest_spool_now"]) == []
