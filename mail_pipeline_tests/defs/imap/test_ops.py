"""The IMAP ops: dynamic-output keys, and the circuit breaker in the fetch jobs."""

from __future__ import annotations

import time

import dagster as dg

from mail_pipeline.defs.fetch.assets import fetch_step
from mail_pipeline.defs.fetch.jobs import email_fetch_job
from mail_pipeline.defs.imap.jobs import fetch_mailbox_job
from mail_pipeline.defs.imap.partitions import MAILBOX_PARTITIONS
from mail_pipeline.intake.imap.circuit import MailboxCircuitBreaker
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.maintenance.metric_points import KEYS
from mail_pipeline.storage.store import EmailSource
from mail_pipeline_tests.defs.conftest import SECRET, Rig, log_lines, output_metadata
from mail_pipeline_tests.fixtures.dovecot import DovecotServer


def _message(n: int, to: str) -> bytes:
    return (
        f"From: x@example.net\r\nTo: {to}\r\nSubject: m {n}\r\nMessage-ID: <cb-{n}-{to}>\r\n"
        f"Date: Tue, 01 Sep 2026 10:00:00 +0000\r\n\r\nhello {n}\r\n"
    ).encode()


def test_wrong_password_is_paused_after_three_runs_and_resumes(
    rig: Rig, dovecot: DovecotServer
) -> None:
    user, login = rig.add_imap_user(dovecot, "nina", password="not-the-password")
    dovecot.append(login, _message(2, "nina@example.org"))
    instance = dg.DagsterInstance.ephemeral()

    def run(*, fails: bool = True) -> dg.ExecuteInProcessResult:
        result = email_fetch_job.execute_in_process(
            resources=rig.resources, instance=instance, raise_on_error=False
        )
        # a failed mailbox fails the run only in its last step, after everything was done
        failed = result.get_failed_step_keys()
        assert failed == ({fetch_step("report_failed_mailboxes")} if fails else set())
        return result

    for n in (1, 2):
        run()
        state = rig.store.mailboxes.get(user)
        assert state is not None and state.consecutive_auth_failures == n and not state.paused
    third = run()
    state = rig.store.mailboxes.get(user)
    assert state is not None and state.paused
    assert "3 consecutive authentication failures" in state.paused_reason
    assert any(
        "nina: mailbox PAUSED after 3 consecutive authentication failures" in line
        for line in log_lines(instance, third.run_id)
    )

    # The fourth run does not try to log in: it skips the mailbox with a log line.
    started = time.monotonic()
    fourth = run(fails=False)  # nina was not fetched: nothing failed in this run
    assert time.monotonic() - started < 30
    assert not [
        e
        for e in fourth.all_events
        if (e.step_key or "").startswith(fetch_step("fetch_mailbox_shard["))
    ]
    assert output_metadata(fourth, fetch_step("plan_imap_fetch"))["paused_mailboxes"] == 1
    assert any(
        "nina: mailbox paused since" in line and "skipped" in line
        for line in log_lines(instance, fourth.run_id)
    )
    imap_task = next(
        t
        for t in rig.store.tasks.recent(run_id=fourth.run_id)
        if t.email_source is EmailSource.IMAP
    )
    assert any(
        "paused" in e["message"] and "imap resume nina" in e["message"] for e in imap_task.log
    )
    assert rig.store.mailboxes.get(user).consecutive_auth_failures == 3  # type: ignore[union-attr]
    (mat,) = fourth.asset_materializations_for_node(fetch_step("release_fetch_lock"))
    assert mat.metadata[KEYS["paused_mailboxes"]].value == 1

    # The partitioned job refuses it too, naming the way out.
    instance.add_dynamic_partitions(MAILBOX_PARTITIONS, ["nina"])
    refused = fetch_mailbox_job.execute_in_process(
        resources=rig.resources, partition_key="nina", instance=instance, raise_on_error=False
    )
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
    run(fails=False)
    assert rig.store.messages.count(user) == 1
    state = rig.store.mailboxes.get(user)
    assert state is not None and not state.paused and state.consecutive_failures == 0
    assert state.last_success_at is not None
