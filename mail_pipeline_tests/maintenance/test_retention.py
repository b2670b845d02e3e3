"""Task retention (with audit, in batches) on SQLite and PostgreSQL, and the whole pass."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select

from mail_pipeline.maintenance.retention import cleanup_tasks, run_retention
from mail_pipeline.maintenance.retention_policy import DAY, RetentionPolicy
from mail_pipeline.storage.store import EmailSource, MailStore, TaskStatus
from mail_pipeline.storage.store.models import EmailTask
from mail_pipeline_tests.fixtures.task_rows import seed, task_row
from mail_pipeline_tests.maintenance.conftest import aged_file, spool_tree

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
AGES_DAYS = (0.25, 2, 10, 45)
PER_CELL = 100  # tasks per (status, age): 6 x 4 x 100 = 2,400 tasks


@pytest.fixture
def clocked(store_url: str) -> Iterator[MailStore]:
    store = MailStore(store_url, clock=lambda: NOW)
    yield store
    store.dispose()


def _seed_every_state(store: MailStore) -> None:
    rows = []
    for status in TaskStatus:
        for age in AGES_DAYS:
            for n in range(PER_CELL):
                rows.append(
                    task_row(
                        status,
                        NOW - timedelta(days=age),
                        saved=n % 5,
                        duplicate=n % 2,
                        source=EmailSource.IMAP if n % 2 else EmailSource.HARAKA,
                        error=f"boom {n}"
                        if status in (TaskStatus.FAILED, TaskStatus.CANCELLED)
                        else "",
                    )
                )
    seed(store, rows)


def _expected(policy: RetentionPolicy) -> dict[str, int]:
    days = {
        TaskStatus.COMPLETED: policy.completed_days,
        TaskStatus.FAILED: policy.failed_days,
        TaskStatus.CANCELLED: policy.cancelled_days,
        TaskStatus.SKIPPED: policy.skipped_days,
    }
    return {
        s.value: PER_CELL * sum(1 for age in AGES_DAYS if d is not None and age > d)
        for s, d in days.items()
    }


def _remaining(store: MailStore) -> dict[tuple[str, float], int]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(EmailTask.status, EmailTask.created_at)).all()
    out: dict[tuple[str, float], int] = {}
    for status, created in rows:
        created = created if created.tzinfo else created.replace(tzinfo=UTC)
        age = min(AGES_DAYS, key=lambda a: abs((NOW - created).total_seconds() - a * DAY))
        out[(status, age)] = out.get((status, age), 0) + 1
    return out


def _count_commits(store: MailStore) -> list[int]:
    commits = [0]

    @event.listens_for(store.engine, "commit")
    def _on_commit(_conn: object) -> None:
        commits[0] += 1

    return commits


def test_deletes_exactly_the_expired_finished_tasks_in_bounded_batches(
    clocked: MailStore,
) -> None:
    _seed_every_state(clocked)
    policy = RetentionPolicy(batch_size=250)
    expected = _expected(policy)
    total = sum(expected.values())
    assert total == 100 * (3 + 2 + 3 + 3)  # completed, failed, cancelled, skipped

    dry = cleanup_tasks(clocked, policy, dry_run=True)
    assert dry.deleted == expected and dry.batches == -(-total // 250)
    assert sum(clocked.tasks.count_by_status().values()) == 2400  # a dry run deletes nothing

    commits = _count_commits(clocked)
    sizes: list[int] = []
    result = cleanup_tasks(clocked, policy, on_batch=lambda c: sizes.append(sum(c.values())))
    assert result.deleted == expected
    assert result.batches == len(sizes) == -(-total // 250)
    assert max(sizes) == 250 and sum(sizes) == total
    # One transaction per batch (the last one is short, so no extra empty pass).
    assert commits[0] == result.batches

    remaining = _remaining(clocked)
    for status in (TaskStatus.PENDING, TaskStatus.RUNNING):
        for age in AGES_DAYS:  # never touched, however old
            assert remaining[(status.value, age)] == PER_CELL
    assert remaining[("COMPLETED", 0.25)] == PER_CELL
    assert ("COMPLETED", 2) not in remaining
    assert remaining[("FAILED", 2)] == PER_CELL  # failed tasks are kept 7 days
    assert ("FAILED", 10) not in remaining
    assert ("SKIPPED", 2) not in remaining and remaining[("SKIPPED", 0.25)] == PER_CELL

    # Audit rows: one per deleted task, with the counters, duration and failure's error.
    assert clocked.maintenance.audit_count() == total
    audits = clocked.maintenance.audit_records(limit=5000)
    assert {a.status for a in audits} == {"COMPLETED", "FAILED", "CANCELLED", "SKIPPED"}
    assert all(a.deleted_at == NOW for a in audits)
    failed = [a for a in audits if a.status == "FAILED"]
    assert len(failed) == 200 and all(a.error_message.startswith("boom") for a in failed)
    assert all(a.error_message == "" for a in audits if a.status == "COMPLETED")
    assert all(a.duration_seconds == pytest.approx(30.0) for a in audits)
    assert sum(a.emails_saved for a in audits) == sum((n % 5) for n in range(PER_CELL)) * (
        total // PER_CELL
    )

    # A second pass finds nothing: one empty transaction, no batch.
    commits[0] = 0
    again = cleanup_tasks(clocked, policy)
    assert again.total == 0 and again.batches == 0 and commits[0] == 1


def test_max_batches_leaves_the_rest_for_the_next_pass(clocked: MailStore) -> None:
    seed(clocked, [task_row(TaskStatus.COMPLETED, NOW - timedelta(days=3)) for _ in range(1200)])
    policy = RetentionPolicy(batch_size=500)
    first = cleanup_tasks(clocked, policy, max_batches=2)
    assert first.total == 1000 and first.batches == 2
    second = cleanup_tasks(clocked, policy)
    assert second.total == 200 and second.batches == 1
    assert clocked.maintenance.audit_count() == 1200


def test_an_exact_multiple_of_the_batch_size_ends_with_one_empty_pass(
    clocked: MailStore,
) -> None:
    seed(clocked, [task_row(TaskStatus.SKIPPED, NOW - timedelta(days=2)) for _ in range(400)])
    commits = _count_commits(clocked)
    result = cleanup_tasks(clocked, RetentionPolicy(batch_size=200))
    assert result.total == 400 and result.batches == 2 and commits[0] == 3


def test_custom_and_disabled_retention(clocked: MailStore) -> None:
    seed(
        clocked,
        [
            task_row(TaskStatus.FAILED, NOW - timedelta(days=3)),
            task_row(TaskStatus.COMPLETED, NOW - timedelta(days=3)),
        ],
    )
    kept = cleanup_tasks(clocked, RetentionPolicy(completed_days=None, failed_days=2))
    assert kept.deleted == {"FAILED": 1}
    assert clocked.tasks.count_by_status() == {"COMPLETED": 1}


def test_open_states_can_never_be_deleted(clocked: MailStore) -> None:
    with pytest.raises(ValueError, match="never deletes RUNNING"):
        clocked.maintenance.delete_expired_batch({TaskStatus.RUNNING: NOW}, 10)


def test_run_retention_reports_everything(clocked: MailStore, tmp_path: Path) -> None:
    now = time.time()
    seed(clocked, [task_row(TaskStatus.COMPLETED, NOW - timedelta(days=2)) for _ in range(3)])
    spool_tree(tmp_path / "spool", now)
    att = tmp_path / "att"
    aged_file(att / "9" / "aa" / "aabb" / "x.bin", 1, now)
    report = run_retention(
        clocked, RetentionPolicy(), spool_dir=tmp_path / "spool", attachment_root=att, now=now
    )
    meta = report.metadata()
    assert meta["tasks_deleted"] == 3 and meta["tasks_deleted_completed"] == 3
    assert meta["processed_files_deleted"] == 2 and meta["failed_spool_files_deleted"] == 3
    assert meta["unmatched_files_deleted"] == 2 and meta["attachments_files_deleted"] == 1
    assert meta["dry_run"] is False
    assert "deleted 3 tasks (3 completed)" in report.summary()
