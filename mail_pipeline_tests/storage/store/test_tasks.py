"""The EmailTask repository: lifecycle, heartbeats, finishing, the log, error text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mail_pipeline.errors import InvalidTransitionError, NotFoundError
from mail_pipeline.storage.store import (
    EmailSource,
    MailStore,
    TaskCounters,
    TaskStatus,
)


def test_lifecycle_records_times_counters_and_log(store: MailStore) -> None:
    task = store.tasks.create(EmailSource.HARAKA, run_id="run-1", timeout_seconds=30)
    assert task.status is TaskStatus.PENDING and task.started_at is None
    assert task.timeout_seconds == 30
    store.tasks.start(task.task_id)
    store.tasks.add_counters(task.task_id, TaskCounters(fetched=3, saved=2, duplicate=1))
    store.tasks.add_execution_log(task.task_id, "ingest", "3 files", "INFO")
    done = store.tasks.mark_completed(task.task_id, TaskCounters(fetched=1, saved=1))
    assert done.status is TaskStatus.COMPLETED
    assert done.counters == TaskCounters(fetched=4, saved=3, failed=0, duplicate=1)
    assert done.started_at is not None and done.completed_at is not None
    assert done.started_at <= done.completed_at
    steps = [entry["step"] for entry in done.log]
    assert steps == ["create", "start", "ingest", "complete"]
    assert {"timestamp", "step", "message", "level"} <= set(done.log[0])


def test_mark_failed_keeps_the_error(store: MailStore) -> None:
    task = store.tasks.create(EmailSource.IMAP, status=TaskStatus.RUNNING)
    failed = store.tasks.mark_failed(task.task_id, "imap.example.org: connection refused")
    assert failed.status is TaskStatus.FAILED
    assert failed.error_message == "imap.example.org: connection refused"
    assert failed.log[-1]["level"] == "ERROR"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_staleness_is_the_heartbeat_not_the_age(store_url: str) -> None:
    clock = Clock()
    store = MailStore(store_url, clock=clock)
    task = store.tasks.create(EmailSource.IMAP, timeout_seconds=60, status=TaskStatus.RUNNING)
    pending = store.tasks.create(EmailSource.HARAKA, timeout_seconds=60)
    assert task.heartbeat_at == clock.now == pending.heartbeat_at  # set at creation
    clock.now += timedelta(seconds=50)
    assert store.tasks.heartbeat(task.task_id) is True
    clock.now += timedelta(seconds=50)  # 100 s old, heartbeat 50 s old: alive
    fresh = store.tasks.get(task.task_id)
    assert fresh.age(clock.now) > timedelta(seconds=60) and not fresh.is_stale(clock.now)
    assert store.tasks.get(pending.task_id).is_stale(clock.now)  # never renewed
    clock.now += timedelta(seconds=10)
    assert not store.tasks.get(task.task_id).is_stale(clock.now)  # exactly the timeout
    clock.now += timedelta(seconds=1)
    assert store.tasks.get(task.task_id).is_stale(clock.now)
    # Starting a task renews its heartbeat.
    assert not store.tasks.start(pending.task_id).is_stale(clock.now)
    # A closed task is never stale and its heartbeat is not renewed.
    store.tasks.mark_completed(task.task_id)
    assert store.tasks.heartbeat(task.task_id) is False
    clock.now += timedelta(days=1)
    done = store.tasks.get(task.task_id)
    assert not done.is_stale(clock.now) and done.heartbeat_at < clock.now - timedelta(hours=1)
    with pytest.raises(NotFoundError):
        store.tasks.heartbeat("no-such-task")
    store.dispose()


def test_cancel_if_stale_rechecks_in_its_transaction(store_url: str) -> None:
    clock = Clock()
    store = MailStore(store_url, clock=clock)
    task = store.tasks.create(EmailSource.IMAP, timeout_seconds=60, status=TaskStatus.RUNNING)
    clock.now += timedelta(seconds=61)
    seen = store.tasks.get(task.task_id)
    assert seen.is_stale(clock.now)
    store.tasks.heartbeat(task.task_id)  # the run beats after the cleanup looked
    assert store.tasks.cancel_if_stale(task.task_id, "stale") is None
    assert store.tasks.get(task.task_id).status is TaskStatus.RUNNING
    clock.now += timedelta(seconds=61)
    cancelled = store.tasks.cancel_if_stale(task.task_id, "stale task cleanup: no heartbeat")
    assert cancelled is not None and cancelled.status is TaskStatus.CANCELLED
    assert cancelled.error_message == "stale task cleanup: no heartbeat"
    assert store.tasks.cancel_if_stale(task.task_id, "again") is None  # closed already
    store.dispose()


def test_finish_survives_a_task_closed_under_its_run(store: MailStore) -> None:
    ok = store.tasks.create(EmailSource.IMAP, status=TaskStatus.RUNNING)
    done = store.tasks.finish(ok.task_id, message="2 mailboxes")
    assert not done.already_closed and done.task.status is TaskStatus.COMPLETED
    bad = store.tasks.create(EmailSource.IMAP, status=TaskStatus.RUNNING)
    failed = store.tasks.finish(bad.task_id, error="every mailbox failed")
    assert failed.task.status is TaskStatus.FAILED
    assert failed.task.error_message == "every mailbox failed"

    closed = store.tasks.create(EmailSource.IMAP, status=TaskStatus.RUNNING)
    store.tasks.mark_cancelled(closed.task_id, "stale task cleanup: no heartbeat")
    late = store.tasks.finish(closed.task_id, message="2 mailboxes")
    assert late.already_closed and late.task.status is TaskStatus.CANCELLED
    assert "was already CANCELLED (stale task cleanup: no heartbeat)" in late.note()
    entry = late.task.log[-1]
    assert entry["level"] == "WARNING" and "COMPLETED: 2 mailboxes" in entry["message"]
    assert store.tasks.finish(closed.task_id, error="x").already_closed  # never raises

    pending = store.tasks.create(EmailSource.IMAP)
    with pytest.raises(InvalidTransitionError):
        store.tasks.finish(pending.task_id)  # it never started: a bug, not a late close


def test_unknown_task(store: MailStore) -> None:
    with pytest.raises(NotFoundError):
        store.tasks.get("nope")
    with pytest.raises(NotFoundError):
        store.tasks.add_counters("nope", TaskCounters(saved=1))


def test_task_ids_are_unique(store: MailStore) -> None:
    store.tasks.create(EmailSource.IMAP, task_id="fixed")
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        store.tasks.create(EmailSource.IMAP, task_id="fixed")


def test_list_filters_and_open_tasks(store: MailStore) -> None:
    a = store.tasks.create(EmailSource.IMAP, run_id="r1")
    b = store.tasks.create(EmailSource.HARAKA, run_id="r1", status=TaskStatus.RUNNING)
    c = store.tasks.create(EmailSource.HARAKA, run_id="r2", status=TaskStatus.RUNNING)
    store.tasks.mark_completed(c.task_id)
    assert {t.task_id for t in store.tasks.open_tasks()} == {a.task_id, b.task_id}
    assert [t.task_id for t in store.tasks.recent(source=EmailSource.HARAKA, run_id="r1")] == [
        b.task_id
    ]
    assert store.tasks.count_by_status() == {"PENDING": 1, "RUNNING": 1, "COMPLETED": 1}


def test_a_nul_in_error_or_log_text_is_stored_without_it(store: MailStore) -> None:
    # A server's or a message's words end up in a task's error and log; PostgreSQL text
    # cannot hold NUL, and SQLite would keep it: both must store the text without it.
    task = store.tasks.create(EmailSource.IMAP, status=TaskStatus.RUNNING, message="new\x00task")
    store.tasks.add_execution_log(task.task_id, "fe\x00tch", "folder IN\x00BOX", "WARNING")
    store.tasks.set_detail(task.task_id, "last_folder", {"name": "IN\x00BOX"})
    failed = store.tasks.mark_failed(task.task_id, "imap: bad\x00 greeting")
    assert failed.error_message == "imap: bad greeting"
    assert failed.details["last_folder"] == {"name": "INBOX"}
    assert [e["message"] for e in failed.log] == [
        "newtask",
        "folder INBOX",
        "RUNNING -> FAILED: imap: bad greeting",
    ]
    assert failed.log[1]["step"] == "fetch"
    late = store.tasks.finish(task.task_id, error="late\x00 error")
    assert late.already_closed and "\x00" not in late.task.log[-1]["message"]
    cancelled = store.tasks.create(EmailSource.HARAKA)
    assert store.tasks.mark_cancelled(cancelled.task_id, "gone\x00").error_message == "gone"


def test_finish_with_problems_completes_and_keeps_them_as_the_error(store: MailStore) -> None:
    task = store.tasks.create(EmailSource.IMAP, status=TaskStatus.RUNNING)
    done = store.tasks.finish(
        task.task_id, message="3 mailboxes, 1 failed", problems="1 of 3 mailboxes failed: b"
    )
    assert done.task.status is TaskStatus.COMPLETED and not done.already_closed
    assert done.task.error_message == "1 of 3 mailboxes failed: b"
    assert done.task.log[-1]["level"] == "WARNING"
    assert "1 of 3 mailboxes failed: b" in done.task.log[-1]["message"]
    # NUL removed like every error text
    other = store.tasks.create(EmailSource.IMAP, status=TaskStatus.RUNNING)
    assert store.tasks.finish(other.task_id, problems="a\x00b").task.error_message == "ab"
    # a task closed under the run keeps its state; the problems are logged with the outcome
    closed = store.tasks.create(EmailSource.IMAP, status=TaskStatus.RUNNING)
    store.tasks.mark_cancelled(closed.task_id, "stale")
    late = store.tasks.finish(closed.task_id, message="m", problems="1 of 1 failed")
    assert late.already_closed and late.task.status is TaskStatus.CANCELLED
    assert "(1 of 1 failed)" in late.task.log[-1]["message"]


def test_with_prefix_counts_and_lists_the_matches_by_id(store: MailStore) -> None:
    ids = sorted(store.tasks.create(EmailSource.IMAP).task_id for _ in range(5))
    total, found = store.tasks.with_prefix("", limit=2)
    assert total == 5 and [t.task_id for t in found] == ids[:2]
    assert store.tasks.with_prefix(ids[3]) == (1, [store.tasks.get(ids[3])])
    assert store.tasks.with_prefix("zz-no-task") == (0, [])


def test_with_prefix_treats_like_wildcards_as_characters(store: MailStore) -> None:
    store.tasks.create(EmailSource.IMAP)
    assert store.tasks.with_prefix("%") == (0, [])
    assert store.tasks.with_prefix("_") == (0, [])
