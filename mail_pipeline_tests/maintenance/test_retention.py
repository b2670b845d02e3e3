"""Retention: tasks (with audit, in batches) on SQLite and PostgreSQL, the spool, attachments."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select

from mail_pipeline.maintenance.retention import (
    DAY,
    RetentionPolicy,
    cleanup_attachments,
    cleanup_spool,
    cleanup_tasks,
    run_retention,
)
from mail_pipeline.mime import parse_message
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.save_service import Delivery, EmailSaveService
from mail_pipeline.storage.store import EmailSource, MailStore, TaskStatus
from mail_pipeline.storage.store.models import EmailTask
from mail_pipeline_tests.fixtures.spool_files import make_raw, make_spool
from mail_pipeline_tests.fixtures.task_rows import seed, task_row

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
                rows.append(task_row(
                    status, NOW - timedelta(days=age), saved=n % 5, duplicate=n % 2,
                    source=EmailSource.IMAP if n % 2 else EmailSource.HARAKA,
                    error=f"boom {n}" if status in (TaskStatus.FAILED, TaskStatus.CANCELLED)
                    else "",
                ))
    seed(store, rows)


def _expected(policy: RetentionPolicy) -> dict[str, int]:
    days = {TaskStatus.COMPLETED: policy.completed_days, TaskStatus.FAILED: policy.failed_days,
            TaskStatus.CANCELLED: policy.cancelled_days, TaskStatus.SKIPPED: policy.skipped_days}
    return {s.value: PER_CELL * sum(1 for age in AGES_DAYS if d is not None and age > d)
            for s, d in days.items()}


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
    assert sum(a.emails_saved for a in audits) == sum(
        (n % 5) for n in range(PER_CELL)) * (total // PER_CELL)

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
    seed(clocked, [task_row(TaskStatus.FAILED, NOW - timedelta(days=3)),
                   task_row(TaskStatus.COMPLETED, NOW - timedelta(days=3))])
    kept = cleanup_tasks(clocked, RetentionPolicy(completed_days=None, failed_days=2))
    assert kept.deleted == {"FAILED": 1}
    assert clocked.tasks.count_by_status() == {"COMPLETED": 1}


def test_policy_is_checked() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        RetentionPolicy(batch_size=0)
    with pytest.raises(ValueError, match="failed_days"):
        RetentionPolicy(failed_days=-1)


def test_open_states_can_never_be_deleted(clocked: MailStore) -> None:
    with pytest.raises(ValueError, match="never deletes RUNNING"):
        clocked.maintenance.delete_expired_batch({TaskStatus.RUNNING: NOW}, 10)


# --- spool -----------------------------------------------------------------------------------


def _file(path: Path, age_days: float, now: float, data: bytes = b"x" * 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (now - age_days * DAY, now - age_days * DAY))
    return path


def _spool_tree(root: Path, now: float) -> dict[str, Path]:
    make_spool(root)
    files = {}
    for name, age in (("old", 8), ("young", 3)):
        day = root / "processed" / ("2026-11-01" if name == "old" else "2026-11-17")
        files[f"processed_{name}_eml"] = _file(day / f"{name}.eml", age, now)
        files[f"processed_{name}_meta"] = _file(day / f"{name}.meta", age, now)
    os.utime(root / "processed" / "2026-11-01", (now - 8 * DAY, now - 8 * DAY))
    # failed/: an old message whose error is recent stays (its newest file counts).
    for stem, ages in (("f-old", (40, 40, 35)), ("f-recent-error", (40, 40, 2)),
                       ("f-young", (5, 5, 5))):
        for suffix, age in zip((".eml", ".meta", ".error.json"), ages, strict=True):
            files[f"{stem}{suffix}"] = _file(root / "failed" / f"{stem}{suffix}", age, now)
    for stem, age in (("u-old", 31), ("u-young", 29)):
        for suffix in (".eml", ".meta"):
            files[f"{stem}{suffix}"] = _file(root / "unmatched" / f"{stem}{suffix}", age, now)
    # Never touched, however old: the inbox, claims, tmp, and symlinks.
    files["inbox"] = _file(root / "inbox" / "waiting.eml", 100, now)
    files["claim"] = _file(root / "claims" / "h+1+1+ab" / "c.eml", 100, now)
    files["tmp"] = _file(root / "tmp" / "t.eml.tmp", 100, now)
    target = _file(root.parent / "outside.eml", 100, now)
    link = root / "failed" / "link.eml"
    link.symlink_to(target)
    files["outside"] = target
    return files


def test_spool_retention_with_a_dry_run_first(tmp_path: Path) -> None:
    now = time.time()
    root = tmp_path / "spool"
    files = _spool_tree(root, now)
    before = sorted(str(p) for p in root.rglob("*"))

    processed, failed, unmatched = cleanup_spool(root, RetentionPolicy(), now=now, dry_run=True)
    assert sorted(str(p) for p in root.rglob("*")) == before  # nothing deleted
    assert processed.files == 2 and failed.files == 3 and unmatched.files == 2

    processed, failed, unmatched = cleanup_spool(root, RetentionPolicy(), now=now)
    gone = {k for k, p in files.items() if not os.path.lexists(p)}
    assert gone == {"processed_old_eml", "processed_old_meta", "f-old.eml", "f-old.meta",
                    "f-old.error.json", "u-old.eml", "u-old.meta"}
    assert processed.bytes == 20 and failed.files == 3 and unmatched.files == 2
    assert not (root / "processed" / "2026-11-01").exists()  # the emptied old day went
    assert (root / "processed" / "2026-11-17").is_dir()
    assert (root / "failed" / "link.eml").is_symlink() and files["outside"].exists()


def test_spool_retention_is_configurable_and_a_missing_spool_is_empty(tmp_path: Path) -> None:
    now = time.time()
    root = tmp_path / "spool"
    _spool_tree(root, now)
    policy = RetentionPolicy(processed_days=1, failed_spool_days=None, unmatched_days=None)
    processed, failed, unmatched = cleanup_spool(root, policy, now=now)
    assert processed.files == 4 and failed.files == 0 and unmatched.files == 0
    assert cleanup_spool(tmp_path / "nowhere", RetentionPolicy())[0].files == 0


# --- attachments -----------------------------------------------------------------------------


def _save_with_attachment(store: MailStore, root: Path) -> str:
    user = store.users.add("att", "att@example.org")
    raw = make_raw(1, to="att@example.org", attachment=b"%PDF-1.4 report")
    service = EmailSaveService(store, AttachmentStorage(root, fsync=False))
    service.save_batch([Delivery(user.id, parse_message(raw), source=EmailSource.HARAKA,
                                 origin="spool:x")])
    (path,) = store.messages.attachment_paths()
    return path


def test_unreferenced_old_attachments_go_young_and_referenced_stay(
    store: MailStore, attachment_root: Path,
) -> None:
    now = time.time()
    kept = _save_with_attachment(store, attachment_root)
    storage = AttachmentStorage(attachment_root)
    _file(storage.root / kept, 30, now)  # old but referenced
    orphan = _file(storage.root / "1" / "ab" / "abcd" / "orphan.pdf", 2, now)
    in_flight = _file(storage.root / "1" / "cd" / "cdef" / "inflight.pdf", 0.01, now)

    dry = cleanup_attachments(store, attachment_root, RetentionPolicy(), now=now, dry_run=True)
    assert dry.paths == ["1/ab/abcd/orphan.pdf"] and orphan.exists()

    result = cleanup_attachments(store, attachment_root, RetentionPolicy(), now=now)
    assert result.files == 1 and not orphan.exists()
    assert not (storage.root / "1" / "ab").exists()  # its emptied directories went too
    assert in_flight.exists() and (storage.root / kept).exists()


def test_run_retention_reports_everything(clocked: MailStore, tmp_path: Path) -> None:
    now = time.time()
    seed(clocked, [task_row(TaskStatus.COMPLETED, NOW - timedelta(days=2)) for _ in range(3)])
    _spool_tree(tmp_path / "spool", now)
    att = tmp_path / "att"
    _file(att / "9" / "aa" / "aabb" / "x.bin", 1, now)
    report = run_retention(clocked, RetentionPolicy(), spool_dir=tmp_path / "spool",
                           attachment_root=att, now=now)
    meta = report.metadata()
    assert meta["tasks_deleted"] == 3 and meta["tasks_deleted_completed"] == 3
    assert meta["processed_files_deleted"] == 2 and meta["failed_spool_files_deleted"] == 3
    assert meta["unmatched_files_deleted"] == 2 and meta["attachments_files_deleted"] == 1
    assert meta["dry_run"] is False
    assert "deleted 3 tasks (3 completed)" in report.summary()
