"""Metrics against seeded states: the seed's numbers, throughput, the spool and mailboxes.

(What the UI plots of them is tested in ``test_metric_points.py``.)"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mail_pipeline.maintenance.metrics import compute_metrics
from mail_pipeline.storage.store import EmailSource, MailStore, TaskStatus
from mail_pipeline_tests.fixtures.spool_files import make_raw, make_spool, write_pair
from mail_pipeline_tests.fixtures.task_rows import seed, task_row

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

#: The keys of ``Metrics.numeric()`` (``mail-pipeline metrics --json``).
NUMERIC = {
    "total_tasks",
    "running_tasks",
    "completed_tasks",
    "failed_tasks",
    "timeout_tasks",
    "recent_failed_tasks",
    "failed_tasks_24h",
    "duplicates_24h",
    "window_hours",
    "imap_saved_per_run",
    "imap_seconds_per_run",
    "haraka_saved_per_run",
    "haraka_seconds_per_run",
    "spool_inbox_ready",
    "spool_failed",
    "spool_unmatched",
    "spool_oldest_inbox_age_seconds",
    "mailboxes_paused",
    "mailboxes_failing",
    "max_consecutive_failures",
}


def test_metrics_of_a_seeded_store_and_spool(store_url: str, tmp_path: Path) -> None:
    store = MailStore(store_url, clock=lambda: NOW)
    seed(
        store,
        [
            task_row(
                TaskStatus.COMPLETED,
                NOW - timedelta(minutes=5),
                saved=6,
                duplicate=3,
                run_seconds=12,
            ),
            task_row(TaskStatus.COMPLETED, NOW - timedelta(minutes=9), saved=2, run_seconds=4),
            task_row(
                TaskStatus.COMPLETED,
                NOW - timedelta(minutes=2),
                saved=5,
                run_seconds=1,
                source=EmailSource.HARAKA,
            ),
            task_row(TaskStatus.FAILED, NOW - timedelta(minutes=20)),
            task_row(TaskStatus.FAILED, NOW - timedelta(hours=3)),
            task_row(TaskStatus.RUNNING, NOW - timedelta(minutes=30)),
            task_row(TaskStatus.PENDING, NOW - timedelta(minutes=1)),
            task_row(TaskStatus.SKIPPED, NOW - timedelta(minutes=1)),
        ],
    )
    alice = store.users.add("alice", "alice@example.org")
    bob = store.users.add("bob", "bob@example.org")
    gone = store.users.add("gone", "gone@example.org")
    for user in (alice, bob, gone):
        store.users.set_setting(user.id, "email_config", {"imap_config": {"imap_host": "h"}})
    store.users.add("spooled", "spooled@example.org")  # no IMAP config: not a mailbox
    store.mailboxes.record_success(alice.id)
    for _ in range(3):
        store.mailboxes.record_failure(bob.id, "auth", "login refused", pause_after_auth_failures=3)
    store.mailboxes.record_failure(gone.id, "connect", "refused", pause_after_auth_failures=3)
    store.users.set_active(gone.id, False)
    spool = make_spool(tmp_path / "spool")
    write_pair(spool, make_raw(1), ["alice@example.org"])
    old = time.time() - 900
    for name in os.listdir(spool / "inbox"):
        os.utime(spool / "inbox" / name, (old, old))
    for folder, n in (("failed", 2), ("unmatched", 3)):
        for i in range(n):
            (spool / folder / f"m{i}.eml").write_bytes(b"x")
            (spool / folder / f"m{i}.meta").write_text("{}")

    metrics = compute_metrics(store, spool_dir=spool)
    assert metrics.seed_metrics() == {
        "total_tasks": 8,
        "running_tasks": 1,
        "completed_tasks": 3,
        "failed_tasks": 2,
        "timeout_tasks": 1,
        "recent_failed_tasks": 1,
    }
    numbers = metrics.numeric()
    assert set(numbers) >= NUMERIC
    assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers.values())
    assert numbers["failed_tasks_24h"] == 2 and numbers["duplicates_24h"] == 3
    assert numbers["window_hours"] == 24
    # Another window: the same keys, its counts, and the window it was counted over.
    hour = compute_metrics(store, window_hours=1).numeric()
    assert (hour["failed_tasks_24h"], hour["duplicates_24h"], hour["window_hours"]) == (1, 3, 1)
    assert numbers["imap_saved_per_run"] == 4 and numbers["imap_seconds_per_run"] == 8
    assert numbers["haraka_saved_per_run"] == 5 and numbers["haraka_runs"] == 1
    assert numbers["spool_inbox_ready"] == 1
    assert (numbers["spool_failed"], numbers["spool_unmatched"]) == (2, 3)
    assert 890 <= numbers["spool_oldest_inbox_age_seconds"] <= 1000
    assert numbers["mailboxes"] == 3 and numbers["mailboxes_paused"] == 1
    assert numbers["mailboxes_failing"] == 2  # every recorded mailbox, active or not
    # Active mailboxes: active users with an IMAP config; the failing ones among them.
    assert metrics.active_mailbox_count == 2
    assert [m.username for m in metrics.active_mailboxes] == ["alice", "bob"]
    assert [m.username for m in metrics.failing_active_mailboxes] == ["bob"]
    # The latest COMPLETED run of each source.
    assert metrics.last_run_seconds == {"IMAP_EMAIL_FETCH": 12.0, "HARAKA_EMAIL_FETCH": 1.0}
    assert numbers["max_consecutive_failures"] == 3
    data = json.loads(json.dumps(metrics.as_dict()))
    by_user = {m["user"]: m for m in data["mailboxes"]}
    assert by_user["alice"]["last_success_at"].startswith("2026-11-20T12:00")
    assert by_user["bob"]["paused"] is True and by_user["bob"]["consecutive_failures"] == 3
    store.dispose()


def test_the_window_is_at_least_an_hour(store: MailStore) -> None:
    with pytest.raises(ValueError, match="window_hours"):
        compute_metrics(store, window_hours=0)


def test_metrics_of_an_empty_store_without_a_spool(store: MailStore, tmp_path: Path) -> None:
    metrics = compute_metrics(store, spool_dir=tmp_path / "not-yet")
    numbers = metrics.numeric()
    assert numbers["total_tasks"] == 0 and numbers["imap_saved_per_run"] == 0
    assert numbers["spool_oldest_inbox_age_seconds"] == 0
    assert compute_metrics(store).spool is None
    assert metrics.active_mailbox_count == 0
    assert metrics.last_run_seconds == {}
