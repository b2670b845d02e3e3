"""Stale-task cleanup closes exactly the tasks whose heartbeat expired, never a live run's task.

The real-process proofs (a killed run Dagster still shows STARTED, a live run stuck on a
silent IMAP server) are in mail_pipeline_tests/defs/fetch/test_stale_runs.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mail_pipeline.maintenance.stale_tasks import cleanup_stale_tasks, close_tasks_of_run
from mail_pipeline.storage.store import EmailSource, MailStore, TaskStatus


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_cleanup_closes_exactly_the_tasks_whose_heartbeat_expired(store_url: str) -> None:
    clock = Clock()
    store = MailStore(store_url, clock=clock)
    tasks = store.tasks
    # Old, but its run kept beating: kept, however old.
    beating = tasks.create(
        EmailSource.IMAP, run_id="live", status=TaskStatus.RUNNING, timeout_seconds=60
    )
    # Its run died (no heartbeat since it started), Dagster or not.
    dead = tasks.create(
        EmailSource.IMAP, run_id="dead", status=TaskStatus.RUNNING, timeout_seconds=60
    )
    dead_pending = tasks.create(EmailSource.HARAKA, run_id="dead", timeout_seconds=60)
    # A run with one task still beating and one that stopped: only the silent one goes.
    mixed_beating = tasks.create(
        EmailSource.IMAP, run_id="mixed", status=TaskStatus.RUNNING, timeout_seconds=60
    )
    mixed_silent = tasks.create(
        EmailSource.HARAKA, run_id="mixed", status=TaskStatus.RUNNING, timeout_seconds=60
    )
    # Made by the CLI (no run id): the same rule.
    cli_dead = tasks.create(EmailSource.HARAKA, status=TaskStatus.RUNNING, timeout_seconds=60)
    young = tasks.create(EmailSource.HARAKA, status=TaskStatus.RUNNING)  # timeout 600
    done = tasks.create(
        EmailSource.IMAP, run_id="dead", status=TaskStatus.RUNNING, timeout_seconds=60
    )
    tasks.mark_completed(done.task_id)
    store.locks.acquire("email_fetch", 3600, run_id="dead")
    store.locks.acquire("other", 3600, run_id="mixed")
    for _ in range(4):
        clock.now += timedelta(seconds=50)
        tasks.heartbeat(beating.task_id)
        tasks.heartbeat(mixed_beating.task_id)
    clock.now += timedelta(seconds=1)  # 201 s after creation

    report = cleanup_stale_tasks(store)

    assert {t for t, _ in report.cancelled} == {
        dead.task_id,
        dead_pending.task_id,
        mixed_silent.task_id,
        cli_dead.task_id,
    }
    assert report.kept == 3
    for task in (beating, mixed_beating, young):
        assert tasks.get(task.task_id).status is TaskStatus.RUNNING
    cancelled = tasks.get(dead.task_id)
    assert cancelled.status is TaskStatus.CANCELLED
    assert "no heartbeat for 201 s (timeout 60 s)" in cancelled.error_message
    assert tasks.get(dead_pending.task_id).status is TaskStatus.CANCELLED
    assert tasks.get(done.task_id).status is TaskStatus.COMPLETED
    # The dead run's lease is freed; the run that still beats keeps its lease.
    assert report.released_runs == ["dead"]
    assert store.locks.get("email_fetch") is None
    assert store.locks.get("other") is not None
    assert cleanup_stale_tasks(store).count == 0
    store.dispose()


def test_close_tasks_of_a_failed_run_and_free_its_lease(store: MailStore) -> None:
    running = store.tasks.create(EmailSource.IMAP, run_id="r1", status=TaskStatus.RUNNING)
    pending = store.tasks.create(EmailSource.HARAKA, run_id="r1")
    other = store.tasks.create(EmailSource.IMAP, run_id="r2", status=TaskStatus.RUNNING)
    store.locks.acquire("email_fetch", 600, run_id="r1")
    closed = close_tasks_of_run(
        store, "r1", failed=True, reason="step crashed", lock_name="email_fetch"
    )
    assert set(closed) == {running.task_id, pending.task_id}
    assert store.tasks.get(running.task_id).status is TaskStatus.FAILED
    assert "step crashed" in store.tasks.get(running.task_id).error_message
    assert store.tasks.get(pending.task_id).status is TaskStatus.CANCELLED
    assert store.tasks.get(other.task_id).status is TaskStatus.RUNNING
    assert store.locks.get("email_fetch") is None
    assert close_tasks_of_run(store, "r1", failed=True, reason="again") == []
