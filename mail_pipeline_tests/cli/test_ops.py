"""mail-pipeline metrics / health / cleanup / cleanup-stale."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mail_pipeline.storage.store import MailStore, TaskStatus
from mail_pipeline_tests.cli.conftest import Run
from mail_pipeline_tests.fixtures.spool_files import make_spool
from mail_pipeline_tests.fixtures.task_rows import seed, task_row


def _now() -> datetime:
    return datetime.now(UTC)


def test_metrics_table_and_json(cli: Run, store_url: str) -> None:
    store = MailStore(store_url)
    seed(
        store,
        [
            task_row(TaskStatus.COMPLETED, _now() - timedelta(minutes=2), saved=4),
            task_row(TaskStatus.FAILED, _now() - timedelta(minutes=3)),
        ],
    )
    user = store.users.add("zoe", "zoe@example.org")
    store.mailboxes.record_failure(user.id, "auth", "login refused", pause_after_auth_failures=1)
    store.dispose()
    table = cli("metrics")
    assert table.code == 0, table.err
    assert "failed in the last hour" in table.out and "IMAP_EMAIL_FETCH" in table.out
    assert "zoe" in table.out and "PAUSED" in table.out
    data = json.loads(cli("metrics", "--json").out)
    assert data["metrics"]["total_tasks"] == 2 and data["metrics"]["recent_failed_tasks"] == 1
    assert data["metrics"]["mailboxes_paused"] == 1
    assert data["mailboxes"][0]["user"] == "zoe"


def test_health_exit_codes_and_flags(cli: Run, store_url: str) -> None:
    ok = cli("health")
    assert (ok.code, ok.out.strip()) == (0, "HEALTHY")
    store = MailStore(store_url)
    seed(store, [task_row(TaskStatus.RUNNING, _now() - timedelta(seconds=700))])
    warn = cli("health")
    assert warn.code == 1 and warn.out.startswith("WARNING: ")
    assert "warning: warning" not in warn.out.lower()
    assert len(warn.out.strip().splitlines()) == 1
    assert cli("health", "--timed-out", "off").code == 0
    assert cli("health", "--timed-out", "2").code == 0
    data = json.loads(cli("health", "--json").out)
    assert data["status"] == "warning" and data["exit_code"] == 1
    for bad in (("--timed-out", "lots"), ("--inbox-age", "0"), ("--failed-tasks", "-1")):
        result = cli("health", *bad)
        assert result.code == 2 and len(result.err.strip().splitlines()) == 1
        assert bad[0] in result.err
    store.dispose()


def test_metrics_and_health_count_over_the_window_of_the_setting(
    cli: Run, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MailStore(store_url)
    seed(store, [task_row(TaskStatus.FAILED, _now() - timedelta(hours=h)) for h in (2, 10)])
    store.dispose()
    assert "FAILED in the last 24 h" in cli("health").out
    monkeypatch.setenv("MAIL_PIPELINE_METRICS_WINDOW_HOURS", "6")
    assert "failed in the last 6 h" in cli("metrics").out
    data = json.loads(cli("metrics", "--json").out)["metrics"]
    assert (data["failed_tasks_24h"], data["window_hours"]) == (1, 6)
    health = cli("health")
    assert health.code == 1 and "1 task FAILED in the last 6 h" in health.out
    monkeypatch.setenv("MAIL_PIPELINE_METRICS_WINDOW_HOURS", "0")
    bad = cli("metrics")
    assert bad.code == 2 and len(bad.err.strip().splitlines()) == 1
    assert "MAIL_PIPELINE_METRICS_WINDOW_HOURS must be 1 or more, got 0" in bad.err


def test_the_defaults_shown_are_the_policy_defaults() -> None:
    from dataclasses import asdict

    from mail_pipeline.cli import ops
    from mail_pipeline.maintenance import metrics
    from mail_pipeline.maintenance.retention_policy import DEFAULT_BATCH_SIZE, RetentionPolicy

    policy = asdict(RetentionPolicy())
    assert {k: policy[k] for k in ops.RETENTION_DEFAULTS} == ops.RETENTION_DEFAULTS
    assert policy["attachment_grace_seconds"] == ops.DEFAULT_GRACE_SECONDS
    assert DEFAULT_BATCH_SIZE == ops.DEFAULT_CLEANUP_BATCH
    assert metrics.DEFAULT_RECENT_RUNS == ops.DEFAULT_RECENT_RUNS


def test_empty_metrics_say_so(cli: Run) -> None:
    result = cli("metrics")
    assert result.code == 0 and "no mailboxes (none fetched yet)" in result.out


def test_cleanup_dry_run_then_for_real(cli: Run, store_url: str, tmp_path: Path) -> None:
    store = MailStore(store_url)
    seed(
        store,
        [task_row(TaskStatus.COMPLETED, _now() - timedelta(days=2)) for _ in range(5)]
        + [task_row(TaskStatus.RUNNING, _now() - timedelta(days=20))],
    )
    spool = make_spool(tmp_path / "home" / "spool")
    old = spool / "processed" / "2026-01-01" / "a.eml"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"x")
    stamp = time.time() - 10 * 86400
    os.utime(old, (stamp, stamp))
    dry = cli("cleanup", "--dry-run")
    assert dry.code == 0, dry.err
    assert "would delete 5 tasks (5 completed)" in dry.out and "1 processed" in dry.out
    assert old.exists() and sum(store.tasks.count_by_status().values()) == 6
    real = json.loads(cli("cleanup", "--json", "--batch-size", "2").out)
    assert real["tasks_deleted"] == 5 and real["task_batches"] == 3
    assert real["processed_files_deleted"] == 1 and not old.exists()
    assert store.tasks.count_by_status() == {"RUNNING": 1}
    assert store.maintenance.audit_count() == 5
    kept = cli("cleanup", "--completed-days", "off", "--failed-days", "0.5")
    assert kept.code == 0
    assert cli("cleanup", "--batch-size", "0").code == 2
    store.dispose()


@pytest.mark.parametrize("dagster_home", [False, True])
def test_cleanup_stale_by_heartbeat_alone(
    cli: Run,
    store_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dagster_home: bool,
) -> None:
    """With or without a Dagster instance the heartbeat decides (the instance knows no run)."""
    if dagster_home:
        (tmp_path / "dagster_home").mkdir()
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    else:
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
    store = MailStore(store_url)
    seed(
        store,
        [
            task_row(TaskStatus.RUNNING, _now() - timedelta(seconds=900), run_id="dead"),
            task_row(TaskStatus.RUNNING, _now() - timedelta(seconds=10), run_id="live"),
        ],
    )
    store.locks.acquire("email_fetch", 3600, run_id="dead")
    result = cli("cleanup-stale")
    assert result.code == 0, result.err
    assert "cancelled 1 stale task(s), kept 1 open (stale: no heartbeat" in result.out
    assert "released the lease(s) of run dead" in result.out
    assert store.tasks.count_by_status() == {"CANCELLED": 1, "RUNNING": 1}
    assert store.locks.get("email_fetch") is None
    store.dispose()
