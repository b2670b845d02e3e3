"""Stale-task cleanup cancels only what can no longer finish, never a live run's task."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mail_pipeline.store import EmailSource, MailStore, TaskStatus
from mail_pipeline.task_cleanup import cleanup_stale_tasks, close_tasks_of_run


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_only_dead_runs_and_timeouts_are_cancelled(store_url: str) -> None:
    clock = Clock()
    store = MailStore(store_url, clock=clock)
    live_fresh = store.tasks.create(EmailSource.IMAP, run_id="live", status=TaskStatus.RUNNING)
    live_old = store.tasks.create(EmailSource.IMAP, run_id="live", status=TaskStatus.RUNNING,
                                  timeout_seconds=60)
    live_pending = store.tasks.create(EmailSource.HARAKA, run_id="live")
    dead = store.tasks.create(EmailSource.HARAKA, run_id="dead", status=TaskStatus.RUNNING)
    dead_pending = store.tasks.create(EmailSource.IMAP, run_id="dead")
    cli_old = store.tasks.create(EmailSource.HARAKA, status=TaskStatus.RUNNING,
                                 timeout_seconds=60)
    cli_fresh = store.tasks.create(EmailSource.HARAKA, status=TaskStatus.RUNNING)
    mine = store.tasks.create(EmailSource.IMAP, run_id="me", status=TaskStatus.RUNNING)
    done = store.tasks.create(EmailSource.IMAP, run_id="dead", status=TaskStatus.RUNNING)
    store.tasks.mark_completed(done.task_id)
    clock.now += timedelta(seconds=120)

    report = cleanup_stale_tasks(store, is_run_alive=lambda run: run in {"live", "me"},
                                 current_run_id="me")

    assert {t for t, _ in report.cancelled} == {dead.task_id, dead_pending.task_id,
                                                cli_old.task_id}
    assert report.kept == 5
    for task in (live_fresh, live_old, live_pending, cli_fresh, mine):
        assert store.tasks.get(task.task_id).status in (TaskStatus.PENDING, TaskStatus.RUNNING)
    cancelled = store.tasks.get(dead.task_id)
    assert cancelled.status is TaskStatus.CANCELLED
    assert "no longer alive" in cancelled.log[-1]["message"]
    assert "timed out" in store.tasks.get(cli_old.task_id).error_message
    assert store.tasks.get(done.task_id).status is TaskStatus.COMPLETED
    store.dispose()


def test_without_an_instance_only_timeouts_count(store_url: str) -> None:
    clock = Clock()
    store = MailStore(store_url, clock=clock)
    fresh = store.tasks.create(EmailSource.IMAP, run_id="r", status=TaskStatus.RUNNING)
    old = store.tasks.create(EmailSource.IMAP, run_id="r", status=TaskStatus.RUNNING,
                             timeout_seconds=10)
    clock.now += timedelta(seconds=11)
    report = cleanup_stale_tasks(store)
    assert [t for t, _ in report.cancelled] == [old.task_id]
    assert store.tasks.get(fresh.task_id).status is TaskStatus.RUNNING
    store.dispose()


def test_close_tasks_of_a_failed_run_and_free_its_lease(store: MailStore) -> None:
    running = store.tasks.create(EmailSource.IMAP, run_id="r1", status=TaskStatus.RUNNING)
    pending = store.tasks.create(EmailSource.HARAKA, run_id="r1")
    other = store.tasks.create(EmailSource.IMAP, run_id="r2", status=TaskStatus.RUNNING)
    store.locks.acquire("email_fetch", 600, run_id="r1")
    closed = close_tasks_of_run(store, "r1", failed=True, reason="step crashed",
                                lock_name="email_fetch")
    assert set(closed) == {running.task_id, pending.task_id}
    assert store.tasks.get(running.task_id).status is TaskStatus.FAILED
    assert "step crashed" in store.tasks.get(running.task_id).error_message
    assert store.tasks.get(pending.task_id).status is TaskStatus.CANCELLED
    assert store.tasks.get(other.task_id).status is TaskStatus.RUNNING
    assert store.locks.get("email_fetch") is None
    assert close_tasks_of_run(store, "r1", failed=True, reason="again") == []
