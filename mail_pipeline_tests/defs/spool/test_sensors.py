"""Sensors, through Dagster's public test helpers."""

from __future__ import annotations

import json
import os

import dagster as dg

from mail_pipeline.defs.jobs import email_fetch_job
from mail_pipeline.defs.partitions import MAILBOX_PARTITIONS
from mail_pipeline.defs.resources import FETCH_LOCK
from mail_pipeline.defs.sensors import (
    fetch_run_failure_sensor,
    haraka_spool_sensor,
    mailbox_partitions_sensor,
)
from mail_pipeline.storage.store import EmailSource, TaskStatus
from mail_pipeline_tests.defs.conftest import Rig
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.fixtures.spool_files import make_raw, write_pair


def _tick(rig: Rig, cursor: str | None) -> tuple[dg.SensorResult | dg.RunRequest | dg.SkipReason,
                                                 str | None]:
    context = dg.build_sensor_context(cursor=cursor, resources={"spool": rig.resources["spool"]})
    result = haraka_spool_sensor(context)
    return result, context.cursor  # type: ignore[return-value]


def test_spool_sensor_cursor_run_key_and_skip(rig: Rig) -> None:
    result, cursor = _tick(rig, None)
    assert isinstance(result, dg.SkipReason) and "empty" in (result.skip_message or "")
    first = write_pair(rig.spool_dir, make_raw(1), ["a@example.org"])
    os.utime(rig.spool_dir / "inbox" / f"{first}.meta", ns=(1_000_000_000, 1_000_000_000))
    result, cursor = _tick(rig, cursor)
    assert isinstance(result, dg.RunRequest)
    assert result.run_key == f"spool-1000000000-{first}.meta"
    assert json.loads(cursor or "{}")["name"] == f"{first}.meta"
    # Same files, same cursor: nothing new to request, however often the sensor ticks.
    again, cursor2 = _tick(rig, cursor)
    assert isinstance(again, dg.SkipReason) and "already requested" in (again.skip_message or "")
    assert cursor2 == cursor
    # A newer file gives a new, different run key.
    second = write_pair(rig.spool_dir, make_raw(2), ["a@example.org"])
    newer, _ = _tick(rig, cursor)
    assert isinstance(newer, dg.RunRequest) and newer.run_key != result.run_key
    assert newer.run_key is not None and second in newer.run_key
    # Files still waiting long after the last request (a failed run, retry-failed) are
    # requested again, once per slot.
    stale = json.loads(cursor or "{}")
    stale["requested_at"] = 0.0
    repeat, cursor3 = _tick(rig, json.dumps({**stale, "mtime_ns": 2**62, "name": "z"}))
    assert isinstance(repeat, dg.RunRequest)
    assert repeat.run_key is not None and repeat.run_key.startswith("spool-waiting-")
    soon, _ = _tick(rig, cursor3)
    assert isinstance(soon, dg.SkipReason)
    # A symlink in the inbox is never taken for a ready file.
    (rig.spool_dir / "inbox" / "evil.meta").symlink_to("/etc/passwd")
    from mail_pipeline.defs.sensors import ready_files

    assert all(name != "evil.meta" for _, name in ready_files(rig.spool_dir))


def test_mailbox_partitions_follow_the_configs(rig: Rig, dovecot: DovecotServer) -> None:
    instance = dg.DagsterInstance.ephemeral()
    rig.add_imap_user(dovecot, "alice")
    rig.add_imap_user(dovecot, "bob")
    rig.store.users.add("nomail", "nomail@example.org")
    resources = {"store": rig.resources["store"], "imap": rig.resources["imap"]}
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        result = mailbox_partitions_sensor(context)
    assert isinstance(result, dg.SensorResult)
    requests = result.dynamic_partitions_requests or []
    assert [(r.partitions_def_name, sorted(r.partition_keys)) for r in requests] == [
        (MAILBOX_PARTITIONS, ["alice", "bob"])
    ]
    instance.add_dynamic_partitions(MAILBOX_PARTITIONS, ["alice", "bob", "gone"])
    rig.store.users.set_active("bob", False)
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        result = mailbox_partitions_sensor(context)
    assert isinstance(result, dg.SensorResult)
    deletes = [r for r in result.dynamic_partitions_requests or []
               if isinstance(r, dg.DeleteDynamicPartitionsRequest)]
    assert sorted(deletes[0].partition_keys) == ["bob", "gone"]
    instance.delete_dynamic_partition(MAILBOX_PARTITIONS, "bob")
    instance.delete_dynamic_partition(MAILBOX_PARTITIONS, "gone")
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        quiet = mailbox_partitions_sensor(context)
    assert isinstance(quiet, dg.SkipReason)


def test_run_failure_sensor_closes_tasks_and_frees_the_lease(rig: Rig) -> None:
    instance = dg.DagsterInstance.ephemeral()
    # A real failed run of email_fetch_job: the spool inbox is a file, so ingest_spool raises.
    inbox = rig.spool_dir / "inbox"
    inbox.rmdir()
    inbox.write_text("not a directory")
    result = email_fetch_job.execute_in_process(resources=rig.resources, instance=instance,
                                                raise_on_error=False)
    assert not result.success
    # The failed branch skipped release_fetch_lock: the lease is still held until the
    # run-failure sensor frees it and closes what the run left open.
    assert rig.store.locks.get(FETCH_LOCK) is not None
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE"
                   or e.event_type_value == "RUN_FAILURE")
    with dg.build_run_status_sensor_context(
        sensor_name="fetch_run_failure_sensor", dagster_instance=instance, dagster_run=run,
        dagster_event=failure, resources={"store": rig.resources["store"]},
    ) as context:
        fetch_run_failure_sensor(context.for_run_failure())
    assert rig.store.locks.get(FETCH_LOCK) is None
    tasks = rig.store.tasks.recent(run_id=result.run_id)
    assert {t.email_source for t in tasks} == {EmailSource.IMAP, EmailSource.HARAKA}
    assert all(t.status.is_final for t in tasks)
    haraka = next(t for t in tasks if t.email_source is EmailSource.HARAKA)
    assert haraka.status is TaskStatus.FAILED
