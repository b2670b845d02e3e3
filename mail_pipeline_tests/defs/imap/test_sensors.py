"""mailbox_partitions_sensor, through Dagster's public test helpers."""

from __future__ import annotations

import dagster as dg

from mail_pipeline.defs.imap.partitions import MAILBOX_PARTITIONS
from mail_pipeline.defs.imap.sensors import mailbox_partitions_sensor
from mail_pipeline_tests.defs.conftest import Rig
from mail_pipeline_tests.fixtures.dovecot import DovecotServer


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
    deletes = [
        r
        for r in result.dynamic_partitions_requests or []
        if isinstance(r, dg.DeleteDynamicPartitionsRequest)
    ]
    assert sorted(deletes[0].partition_keys) == ["bob", "gone"]
    instance.delete_dynamic_partition(MAILBOX_PARTITIONS, "bob")
    instance.delete_dynamic_partition(MAILBOX_PARTITIONS, "gone")
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        quiet = mailbox_partitions_sensor(context)
    assert isinstance(quiet, dg.SkipReason)
