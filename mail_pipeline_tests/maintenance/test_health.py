"""Health: every threshold crossed in turn, against seeded states."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mail_pipeline.maintenance.health import HealthLevel, HealthThresholds, evaluate
from mail_pipeline.maintenance.metrics import compute_metrics
from mail_pipeline.storage.store import MailStore, TaskStatus
from mail_pipeline_tests.fixtures.spool_files import make_raw, make_spool, write_pair
from mail_pipeline_tests.fixtures.task_rows import seed, task_row

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def clocked(store_url: str) -> Iterator[MailStore]:
    store = MailStore(store_url, clock=lambda: NOW)
    yield store
    store.dispose()


def _health(
    store: MailStore, spool: Path | None = None, thresholds: HealthThresholds | None = None
) -> tuple[HealthLevel, str]:
    report = evaluate(compute_metrics(store, spool_dir=spool), thresholds)
    return report.level, report.line()


def test_each_threshold_in_turn(clocked: MailStore, tmp_path: Path) -> None:
    spool = make_spool(tmp_path / "spool")
    seed(clocked, [task_row(TaskStatus.COMPLETED, NOW - timedelta(minutes=1))])
    assert _health(clocked, spool) == (HealthLevel.HEALTHY, "healthy")

    # 10 failures in 24 h is still fine; the 11th is critical.
    seed(clocked, [task_row(TaskStatus.FAILED, NOW - timedelta(hours=h)) for h in range(10)])
    seed(clocked, [task_row(TaskStatus.FAILED, NOW - timedelta(hours=30))])  # too old to count
    assert _health(clocked, spool)[0] is HealthLevel.HEALTHY
    seed(clocked, [task_row(TaskStatus.FAILED, NOW - timedelta(hours=23))])
    level, line = _health(clocked, spool)
    assert level is HealthLevel.CRITICAL and "11 tasks failed in the last 24 h" in line
    assert (
        _health(clocked, spool, HealthThresholds(failed_24h_critical=20))[0] is HealthLevel.HEALTHY
    )
    relaxed = HealthThresholds(failed_24h_critical=None)

    # A stale task (no heartbeat within its timeout): warning.
    seed(clocked, [task_row(TaskStatus.RUNNING, NOW - timedelta(seconds=601))])
    level, line = _health(clocked, spool, relaxed)
    assert level is HealthLevel.WARNING and "1 stale task(s): no heartbeat within" in line
    relaxed = HealthThresholds(failed_24h_critical=None, timed_out_warning=None)
    assert _health(clocked, spool, relaxed)[0] is HealthLevel.HEALTHY

    # A paused mailbox: warning, naming it.
    user = clocked.users.add("carol", "carol@example.org")
    clocked.mailboxes.pause(user.id, "3 consecutive authentication failures")
    level, line = _health(clocked, spool, relaxed)
    assert level is HealthLevel.WARNING and "paused" in line and "carol" in line
    relaxed = HealthThresholds(
        failed_24h_critical=None, timed_out_warning=None, paused_warning=None
    )
    assert _health(clocked, spool, relaxed)[0] is HealthLevel.HEALTHY

    # A spool backlog: the oldest inbox file is older than 30 minutes.
    write_pair(spool, make_raw(1), ["carol@example.org"])
    assert _health(clocked, spool, relaxed)[0] is HealthLevel.HEALTHY
    old = time.time() - 3600
    for name in os.listdir(spool / "inbox"):
        os.utime(spool / "inbox" / name, (old, old))
    level, line = _health(clocked, spool, relaxed)
    assert level is HealthLevel.WARNING and "spool backlog" in line
    relaxed = HealthThresholds(
        failed_24h_critical=None,
        timed_out_warning=None,
        paused_warning=None,
        inbox_age_warning_seconds=7200,
    )
    assert _health(clocked, spool, relaxed)[0] is HealthLevel.HEALTHY

    # Messages waiting in failed/: off by default, a warning when asked for.
    (spool / "failed" / "x.meta").write_text("{}")
    assert _health(clocked, spool, relaxed)[0] is HealthLevel.HEALTHY
    strict = HealthThresholds(
        failed_24h_critical=None,
        timed_out_warning=None,
        paused_warning=None,
        inbox_age_warning_seconds=None,
        spool_failed_warning=1,
    )
    assert _health(clocked, spool, strict)[0] is HealthLevel.WARNING

    # Everything at once with the defaults: critical first, then the warnings, one line.
    level, line = _health(clocked, spool)
    assert level is HealthLevel.CRITICAL
    assert line.startswith("critical: ") and line.count("warning: ") == 3
    assert "\n" not in line


def test_thresholds_are_checked() -> None:
    with pytest.raises(ValueError, match="paused_warning"):
        HealthThresholds(paused_warning=-1)
