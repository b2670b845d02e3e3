"""The ``fetched_mail`` asset: a run over every partition leaves exactly the failed mailboxes as
failed partitions, and a backfill of those partitions fetches just them and heals them."""

from __future__ import annotations

import threading

import dagster as dg

from mail_pipeline.defs.fetch.jobs import email_fetch_job
from mail_pipeline.defs.fetch.schedules import build_fetch_schedule, every_mailbox
from mail_pipeline.defs.imap.health import FETCHED_MAIL
from mail_pipeline.defs.imap.partitions import MAILBOX_PARTITIONS, mailbox_partitions
from mail_pipeline.defs.resources import FETCH_LOCK
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline_tests.defs.conftest import SECRET, Rig
from mail_pipeline_tests.fixtures.dovecot import DovecotServer

USERS = ("ann", "bob", "cat")


def _message(n: int, to: str) -> bytes:
    return (
        f"From: x@example.net\r\nTo: {to}\r\nSubject: m {n}\r\nMessage-ID: <asset-{n}-{to}>\r\n"
        f"Date: Tue, 01 Sep 2026 10:00:00 +0000\r\n\r\nhello {n}\r\n"
    ).encode()


def _status(instance: dg.DagsterInstance) -> dict[str, dg.AssetPartitionStatus | None]:
    status = instance.get_status_by_partition(FETCHED_MAIL, list(USERS), mailbox_partitions)
    assert status is not None
    return dict(status)


def test_failed_mailboxes_are_the_failed_partitions_until_a_backfill_heals_them(
    rig: Rig, dovecot: DovecotServer
) -> None:
    ann, ann_login = rig.add_imap_user(dovecot, "ann")
    bob, bob_login = rig.add_imap_user(dovecot, "bob", password="not-the-password")
    cat, _ = rig.add_imap_user(dovecot, "cat")
    dovecot.append(ann_login, _message(1, "ann@example.org"))
    dovecot.append(bob_login, _message(2, "bob@example.org"))
    with dg.instance_for_test() as instance:
        _heal(rig, dovecot, instance, ann_login, bob_login, (ann, bob, cat))


def _heal(
    rig: Rig,
    dovecot: DovecotServer,
    instance: dg.DagsterInstance,
    ann_login: str,
    bob_login: str,
    ids: tuple[int, int, int],
) -> None:
    ann, bob, cat = ids
    instance.add_dynamic_partitions(MAILBOX_PARTITIONS, list(USERS))

    # The scheduled run: every partition, as the schedule asks for it.
    with dg.build_schedule_context(
        instance=instance, resources={"store": rig.resources["store"]}
    ) as context:
        tick = build_fetch_schedule().evaluate_tick(context)
    assert tick.run_requests is not None
    (request,) = tick.run_requests
    assert every_mailbox(instance).items() <= request.tags.items()
    assert every_mailbox(instance) == {
        "dagster/asset_partition_range_start": "ann",
        "dagster/asset_partition_range_end": "cat",
    }
    scheduled = email_fetch_job.execute_in_process(
        resources=rig.resources, instance=instance, tags=request.tags, raise_on_error=False
    )
    assert not scheduled.success  # bob failed: the run is flagged
    assert rig.store.messages.count(ann) == 1
    assert _status(instance) == {
        "ann": dg.AssetPartitionStatus.MATERIALIZED,
        "bob": dg.AssetPartitionStatus.FAILED,
        # first successful fetch of an empty mailbox: materialized too
        "cat": dg.AssetPartitionStatus.MATERIALIZED,
    }

    # The operator fixes bob's password and backfills the failed partition only.
    config = EmailConfigManager(rig.store, SECRET)
    fixed = dovecot.new_user()
    dovecot.append(fixed.username, _message(3, "bob@example.org"))
    config.update_fetch_config(
        bob,
        {
            "imap_config": {
                "imap_host": "127.0.0.1",
                "imap_ssl_port": dovecot.imaps_port,
                "username": fixed.username,
                "password": fixed.password,
                "use_ssl": True,
                "ca_file": str(dovecot.ca_cert_path),
            },
            "filter_config": {"folders": ["INBOX"], "max_age_days": None},
        },
    )
    dovecot.append(ann_login, _message(4, "ann@example.org"))
    backfill = email_fetch_job.execute_in_process(
        resources=rig.resources, instance=instance, partition_key="bob", raise_on_error=False
    )
    assert backfill.success
    assert rig.store.messages.count(bob) == 1
    assert rig.store.messages.count(ann) == 1  # not part of the backfill
    assert rig.store.messages.count(cat) == 0
    assert all(
        status is dg.AssetPartitionStatus.MATERIALIZED for status in _status(instance).values()
    )

    # A healthy tick over idle mailboxes logs no materialization; ann's new mail is one.
    again = email_fetch_job.execute_in_process(
        resources=rig.resources, instance=instance, tags=every_mailbox(instance)
    )
    assert [
        e.partition for e in again.get_asset_materialization_events() if e.asset_key == FETCHED_MAIL
    ] == ["ann"]
    assert rig.store.messages.count(ann) == 2
    assert all(
        status is dg.AssetPartitionStatus.MATERIALIZED for status in _status(instance).values()
    )


def test_a_run_without_partitions_fetches_every_mailbox(rig: Rig, dovecot: DovecotServer) -> None:
    ann, ann_login = rig.add_imap_user(dovecot, "ann")
    dovecot.append(ann_login, _message(5, "ann@example.org"))
    instance = dg.DagsterInstance.ephemeral()
    assert every_mailbox(instance) == {}  # no partition yet: the run has none
    result = email_fetch_job.execute_in_process(resources=rig.resources, instance=instance)
    assert result.success
    assert rig.store.messages.count(ann) == 1


def test_a_backfill_run_waits_for_the_lease_instead_of_being_skipped(
    rig: Rig, dovecot: DovecotServer
) -> None:
    ann, ann_login = rig.add_imap_user(dovecot, "ann")
    dovecot.append(ann_login, _message(6, "ann@example.org"))
    token = rig.store.locks.acquire(FETCH_LOCK, 600, run_id="scheduled-run")
    assert token is not None
    releaser = threading.Timer(1.0, lambda: rig.store.locks.release(FETCH_LOCK, token))
    releaser.start()
    try:
        result = email_fetch_job.execute_in_process(
            resources=rig.resources,
            instance=dg.DagsterInstance.ephemeral(),
            tags={"dagster/backfill": "bf-1"},
        )
    finally:
        releaser.join()
    assert result.success
    assert rig.store.messages.count(ann) == 1  # fetched, not skipped
