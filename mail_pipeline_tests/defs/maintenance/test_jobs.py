"""cleanup_tasks_job, the mail_metrics asset, and the circuit breaker in the fetch jobs."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from mail_pipeline.defs.definitions import build_definitions
from mail_pipeline.defs.jobs import email_fetch_job, fetch_mailbox_job
from mail_pipeline.defs.maintenance import MAIL_METRICS, cleanup_tasks_job
from mail_pipeline.defs.partitions import MAILBOX_PARTITIONS
from mail_pipeline.defs.sensors import failing_mailboxes
from mail_pipeline.intake.imap.circuit import MailboxCircuitBreaker
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.storage.store import EmailSource, MailStore, TaskStatus
from mail_pipeline_tests.defs.conftest import SECRET, Rig
from mail_pipeline_tests.defs.test_jobs import output_metadata
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.fixtures.task_rows import seed, task_row
from mail_pipeline_tests.maintenance.test_metrics import PLOTTED


def _message(n: int, to: str) -> bytes:
    return (f"From: x@example.net\r\nTo: {to}\r\nSubject: m {n}\r\nMessage-ID: <cb-{n}-{to}>\r\n"
            f"Date: Tue, 01 Sep 2026 10:00:00 +0000\r\n\r\nhello {n}\r\n").encode()


def _materializations(instance: dg.DagsterInstance) -> list[dict[str, object]]:
    records = instance.fetch_materializations(MAIL_METRICS, limit=100).records
    out = []
    for record in records:
        mat = record.asset_materialization
        assert mat is not None
        out.append({k: v.value for k, v in mat.metadata.items()})
    return out


def _log_lines(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id)]


def test_definitions_hold_the_job_schedule_and_asset() -> None:
    defs = build_definitions(cleanup_cron="15 2 * * *")
    assert defs.resolve_job_def("cleanup_tasks_job") is not None
    schedule = defs.resolve_schedule_def("cleanup_tasks_schedule")
    assert schedule.cron_schedule == "15 2 * * *"
    assert schedule.job_name == "cleanup_tasks_job"
    assert MAIL_METRICS in {spec.key for spec in defs.resolve_all_asset_specs()}


def test_cleanup_job_dry_run_then_real_run(rig: Rig) -> None:
    now = datetime.now(UTC)
    seed(rig.store, [task_row(TaskStatus.COMPLETED, now - timedelta(days=2)) for _ in range(7)]
         + [task_row(TaskStatus.FAILED, now - timedelta(days=3), error="x")]
         + [task_row(TaskStatus.RUNNING, now - timedelta(days=30))])
    old_file = rig.spool_dir / "processed" / "2026-01-01" / "a.eml"
    old_file.parent.mkdir(parents=True)
    old_file.write_bytes(b"x" * 100)
    stamp = time.time() - 9 * 86400
    os.utime(old_file, (stamp, stamp))
    instance = dg.DagsterInstance.ephemeral()

    def run(**config: object) -> dg.ExecuteInProcessResult:
        return cleanup_tasks_job.execute_in_process(
            resources=rig.resources, instance=instance,
            run_config={"ops": {"apply_retention": {"config": config}}})

    dry = run(dry_run=True)
    assert dry.success
    meta = output_metadata(dry, "apply_retention")
    assert meta["dry_run"] is True and meta["tasks_deleted"] == 7
    assert meta["processed_files_deleted"] == 1 and old_file.exists()
    assert sum(rig.store.tasks.count_by_status().values()) == 9

    real = run(batch_size=3)
    assert real.success
    meta = output_metadata(real, "apply_retention")
    assert meta["tasks_deleted"] == 7 and meta["tasks_deleted_completed"] == 7
    assert meta["tasks_deleted_failed"] == 0 and meta["task_batches"] == 3
    assert meta["processed_bytes_deleted"] == 100 and not old_file.exists()
    assert rig.store.tasks.count_by_status() == {"FAILED": 1, "RUNNING": 1}
    assert rig.store.maintenance.audit_count() == 7

    # A longer failed-task retention than the default, and then a shorter one.
    assert output_metadata(run(failed_days=2), "apply_retention")["tasks_deleted_failed"] == 1
    # Every run recorded the metrics asset too.
    history = _materializations(instance)
    assert len(history) == 3 and history[0]["audited_tasks"] == 8


def test_every_fetch_run_materializes_the_metrics_the_ui_plots(rig: Rig,
                                                               dovecot: DovecotServer) -> None:
    user, login = rig.add_imap_user(dovecot, "mia")
    dovecot.append(login, _message(1, "mia@example.org"))
    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):
        result = email_fetch_job.execute_in_process(resources=rig.resources, instance=instance)
        assert result.success
        (mat,) = result.asset_materializations_for_node("release_fetch_lock")
        assert mat.asset_key == MAIL_METRICS
        assert set(mat.metadata) >= PLOTTED
        for value in mat.metadata.values():
            assert isinstance(value, dg.IntMetadataValue | dg.FloatMetadataValue)
    history = _materializations(instance)
    assert len(history) == 2
    assert history[0]["imap_runs"] == 2 and history[0]["imap_saved_per_run"] == 0.5
    assert history[0]["mailboxes"] == 1 and history[0]["mailboxes_paused"] == 0
    state = rig.store.mailboxes.get(user)
    assert state is not None and state.last_success_at is not None


def test_wrong_password_is_paused_after_three_runs_and_resumes(
    rig: Rig, dovecot: DovecotServer
) -> None:
    user, login = rig.add_imap_user(dovecot, "nina", password="not-the-password")
    dovecot.append(login, _message(2, "nina@example.org"))
    instance = dg.DagsterInstance.ephemeral()

    def run() -> dg.ExecuteInProcessResult:
        result = email_fetch_job.execute_in_process(resources=rig.resources, instance=instance)
        assert result.success  # a failed mailbox never fails the run
        return result

    for n in (1, 2):
        run()
        state = rig.store.mailboxes.get(user)
        assert state is not None and state.consecutive_auth_failures == n and not state.paused
    third = run()
    state = rig.store.mailboxes.get(user)
    assert state is not None and state.paused
    assert "3 consecutive authentication failures" in state.paused_reason
    assert any("nina: mailbox PAUSED after 3 consecutive authentication failures" in line
               for line in _log_lines(instance, third.run_id))

    # The fourth run does not try to log in: it skips the mailbox with a log line.
    started = time.monotonic()
    fourth = run()
    assert time.monotonic() - started < 30
    assert not [e for e in fourth.all_events if (e.step_key or "").startswith("fetch_mailbox[")]
    assert output_metadata(fourth, "plan_imap_fetch")["paused_mailboxes"] == 1
    assert any("nina: mailbox paused since" in line and "skipped" in line
               for line in _log_lines(instance, fourth.run_id))
    imap_task = next(t for t in rig.store.tasks.recent(run_id=fourth.run_id)
                     if t.email_source is EmailSource.IMAP)
    assert any("paused" in e["message"] and "imap resume nina" in e["message"]
               for e in imap_task.log)
    assert rig.store.mailboxes.get(user).consecutive_auth_failures == 3  # type: ignore[union-attr]
    (mat,) = fourth.asset_materializations_for_node("release_fetch_lock")
    assert mat.metadata["mailboxes_paused"].value == 1

    # The partitioned job refuses it too, naming the way out.
    instance.add_dynamic_partitions(MAILBOX_PARTITIONS, ["nina"])
    refused = fetch_mailbox_job.execute_in_process(
        resources=rig.resources, partition_key="nina", instance=instance, raise_on_error=False)
    assert not refused.success
    message = refused.get_step_failure_events()[0].event_specific_data.error.message  # type: ignore[union-attr]
    assert "paused" in message and "imap resume nina" in message

    # The operator fixes the password and resumes: the next run fetches the mail.
    manager = EmailConfigManager(rig.store, SECRET)
    config = manager.get_email_config(user)
    config["imap_config"]["password"] = dovecot.password_of(login)
    manager.update_fetch_config(user, config)
    was_paused, _ = MailboxCircuitBreaker(rig.store).resume("nina")
    assert was_paused
    run()
    assert rig.store.messages.count(user) == 1
    state = rig.store.mailboxes.get(user)
    assert state is not None and not state.paused and state.consecutive_failures == 0
    assert state.last_success_at is not None


def test_partition_runs_record_outcomes(rig: Rig, dovecot: DovecotServer) -> None:
    user, _login = rig.add_imap_user(dovecot, "omar", password="wrong")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(MAILBOX_PARTITIONS, ["omar"])
    failed = fetch_mailbox_job.execute_in_process(
        resources=rig.resources, partition_key="omar", instance=instance, raise_on_error=False)
    assert not failed.success
    state = rig.store.mailboxes.get(user)
    assert state is not None and state.last_error_kind == "auth"
    assert state.consecutive_auth_failures == 1


def test_failure_message_names_the_mailboxes() -> None:
    assert failing_mailboxes("fetch_mailbox_job", {"dagster/partition": "erin"}, []) == ["erin"]
    assert failing_mailboxes("email_fetch_job", {}, [
        "fetch_mailbox[alice_1]", "ingest_spool", "fetch_mailbox[bob_2]"]) == ["alice_1", "bob_2"]
    assert failing_mailboxes("spool_ingest_job", {}, ["ingest_spool_now"]) == []


def test_metrics_survive_a_store_without_mailboxes(store: MailStore) -> None:
    # The asset's numbers never miss a key, even on an empty store.
    from mail_pipeline.maintenance.metrics import compute_metrics

    assert PLOTTED - {"spool_inbox_ready", "spool_failed", "spool_unmatched",
                      "spool_oldest_inbox_age_seconds"} <= set(compute_metrics(store).numeric())
