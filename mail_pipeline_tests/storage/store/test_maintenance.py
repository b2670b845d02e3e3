"""The maintenance repository (audit, statistics), on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mail_pipeline.errors import NotFoundError
from mail_pipeline.storage.store import EmailSource, MailStore, TaskCounters, TaskStatus
from mail_pipeline_tests.fixtures.task_rows import seed, task_row

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_a_real_task_is_audited_with_its_counters_and_error(store_url: str) -> None:
    times = iter([NOW - timedelta(days=9, seconds=s) for s in (100, 90, 80, 70, 0)])
    past = MailStore(store_url, clock=lambda: next(times, NOW - timedelta(days=9)))
    task = past.tasks.create(EmailSource.HARAKA, run_id="r1", status=TaskStatus.RUNNING)
    past.tasks.add_counters(task.task_id, TaskCounters(5, 3, 1, 1))
    past.tasks.mark_failed(task.task_id, "spool unreadable")
    past.dispose()
    store = MailStore(store_url, clock=lambda: NOW)
    deleted = store.maintenance.delete_expired_batch({TaskStatus.FAILED: NOW - timedelta(7)}, 10)
    assert deleted == {"FAILED": 1}
    (audit,) = store.maintenance.audit_records(task_id=task.task_id)
    assert (audit.email_source, audit.status, audit.run_id) == (
        "HARAKA_EMAIL_FETCH",
        "FAILED",
        "r1",
    )
    assert (
        audit.emails_fetched,
        audit.emails_saved,
        audit.emails_failed,
        audit.emails_duplicate,
    ) == (5, 3, 1, 1)
    assert audit.error_message == "spool unreadable"
    assert audit.duration_seconds is not None and audit.duration_seconds >= 0
    assert audit.deleted_at == NOW
    with pytest.raises(NotFoundError):
        store.tasks.get(task.task_id)
    store.dispose()


def test_task_stats(store_url: str) -> None:
    store = MailStore(store_url, clock=lambda: NOW)
    seed(
        store,
        [
            task_row(
                TaskStatus.COMPLETED,
                NOW - timedelta(minutes=5),
                saved=10,
                run_seconds=20,
                duplicate=2,
            ),
            task_row(TaskStatus.COMPLETED, NOW - timedelta(minutes=10), saved=4, run_seconds=10),
            task_row(
                TaskStatus.COMPLETED,
                NOW - timedelta(minutes=10),
                saved=7,
                run_seconds=3,
                source=EmailSource.HARAKA,
            ),
            task_row(TaskStatus.FAILED, NOW - timedelta(minutes=30)),
            task_row(TaskStatus.FAILED, NOW - timedelta(hours=5)),
            task_row(TaskStatus.FAILED, NOW - timedelta(days=2)),
            task_row(TaskStatus.RUNNING, NOW - timedelta(minutes=11)),  # past its 600 s
            task_row(TaskStatus.RUNNING, NOW - timedelta(minutes=1)),
        ],
    )
    stats = store.maintenance.task_stats()
    assert stats.total == 8 and stats.by_status["FAILED"] == 3
    assert stats.timed_out == 1
    assert (stats.failed_last_hour, stats.failed_last_day) == (1, 2)
    assert stats.duplicates_last_day == 2
    imap = stats.throughput["IMAP_EMAIL_FETCH"]
    assert imap.runs == 2 and imap.saved_per_run == 7 and imap.seconds_per_run == 15
    assert stats.throughput["HARAKA_EMAIL_FETCH"].saved_per_run == 7
    assert (
        store.maintenance.task_stats(recent_runs=1).throughput["IMAP_EMAIL_FETCH"].seconds_per_run
        == 20
    )
    # The window of the FAILED tasks and duplicates is an argument (24 h by default).
    six = store.maintenance.task_stats(window=timedelta(hours=6))
    assert (six.failed_last_hour, six.failed_last_day, six.duplicates_last_day) == (1, 2, 2)
    quarter = store.maintenance.task_stats(window=timedelta(minutes=15))
    assert (quarter.failed_last_day, quarter.duplicates_last_day) == (0, 2)
    assert store.maintenance.task_stats(window=timedelta(minutes=3)).duplicates_last_day == 0
    assert store.maintenance.task_stats(window=timedelta(days=3)).failed_last_day == 3
    with pytest.raises(ValueError, match="window"):
        store.maintenance.task_stats(window=timedelta(0))
    store.dispose()
