"""fetch_mailbox_job end to end: a failing partition, its backfill, the circuit breaker."""

from __future__ import annotations

import dagster as dg

from mail_pipeline.defs.imap.jobs import fetch_mailbox_job
from mail_pipeline.defs.imap.partitions import MAILBOX_PARTITIONS
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline_tests.defs.conftest import SECRET, Rig
from mail_pipeline_tests.fixtures.dovecot import DovecotServer


def _imap_message(n: int, to: str) -> bytes:
    return (
        f"From: x@example.net\r\nTo: {to}\r\nSubject: imap {n}\r\n"
        f"Message-ID: <imap-{n}-{to}>\r\nDate: Tue, 01 Sep 2026 10:00:00 +0000\r\n\r\n"
        f"hello {n}\r\n"
    ).encode()


def _check_evaluations(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckEvaluation]:
    """The run's asset check evaluations, as the instance stored them (a failed step's too)."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    return [
        r.event_log_entry.dagster_event.asset_check_evaluation_data
        for r in records
        if r.event_log_entry.dagster_event is not None
    ]


def test_mailbox_partition_fails_then_backfills(rig: Rig, dovecot: DovecotServer) -> None:
    user, login = rig.add_imap_user(dovecot, "erin", password="wrong")
    dovecot.append(login, _imap_message(1, "erin@example.org"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(MAILBOX_PARTITIONS, ["erin"])
    failed = fetch_mailbox_job.execute_in_process(
        resources=rig.resources, partition_key="erin", instance=instance, raise_on_error=False
    )
    assert not failed.success
    failure = failed.get_step_failure_events()[0]
    assert "auth" in failure.event_specific_data.error.message  # type: ignore[union-attr]
    (check,) = _check_evaluations(instance, failed.run_id)  # the final outcome, on its partition
    assert check.partition == "erin" and not check.passed
    assert check.metadata["status"].value == "failing"
    # Not retried: an authentication error is not transient.
    assert len(failed.get_step_failure_events()) == 1
    # The operator fixes the password, then re-runs the partition.
    manager = EmailConfigManager(rig.store, SECRET)
    config = manager.get_email_config(user)
    config["imap_config"]["password"] = dovecot.password_of(login)
    manager.update_fetch_config(user, config)
    ok = fetch_mailbox_job.execute_in_process(
        resources=rig.resources, partition_key="erin", instance=instance
    )
    assert ok.success
    assert rig.store.messages.count(user) == 1
    (check,) = _check_evaluations(instance, ok.run_id)
    assert check.partition == "erin" and check.passed
    assert check.metadata["failing_since"].value == "-"


def test_partition_runs_record_outcomes(rig: Rig, dovecot: DovecotServer) -> None:
    user, _login = rig.add_imap_user(dovecot, "omar", password="wrong")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(MAILBOX_PARTITIONS, ["omar"])
    failed = fetch_mailbox_job.execute_in_process(
        resources=rig.resources, partition_key="omar", instance=instance, raise_on_error=False
    )
    assert not failed.success
    state = rig.store.mailboxes.get(user)
    assert state is not None and state.last_error_kind == "auth"
    assert state.consecutive_auth_failures == 1
