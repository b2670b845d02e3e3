"""Health: every WARNING and CRITICAL rule in turn, against seeded stores, and the message."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mail_pipeline.maintenance.health import (
    Finding,
    HealthLevel,
    HealthReport,
    HealthThresholds,
    evaluate,
)
from mail_pipeline.maintenance.metrics import compute_metrics
from mail_pipeline.storage.store import MailStore, TaskStatus
from mail_pipeline_tests.fixtures.spool_files import make_raw, make_spool, write_pair
from mail_pipeline_tests.fixtures.task_rows import seed, task_row

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class Clock:
    """A store clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def clocked(store_url: str, clock: Clock) -> Iterator[MailStore]:
    store = MailStore(store_url, clock=clock)
    yield store
    store.dispose()


def _mailbox(store: MailStore, name: str) -> int:
    """An active user with an IMAP config (an active mailbox); return its id."""
    user = store.users.add(name, f"{name}@example.org")
    store.users.set_setting(
        user.id, "email_config", {"imap_config": {"imap_host": "imap.example.org"}}
    )
    return user.id


def _fail(store: MailStore, user_id: int, kind: str = "auth", error: str = "login refused") -> None:
    store.mailboxes.record_failure(user_id, kind, error, pause_after_auth_failures=None)


def _report(
    store: MailStore,
    spool: Path | None = None,
    thresholds: HealthThresholds | None = None,
    window_hours: int = 24,
) -> HealthReport:
    metrics = compute_metrics(store, spool_dir=spool, window_hours=window_hours)
    return evaluate(metrics, thresholds)


def _age_inbox(spool: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    for name in os.listdir(spool / "inbox"):
        os.utime(spool / "inbox" / name, (stamp, stamp))


def test_healthy_is_one_word_and_exit_code_0(clocked: MailStore, tmp_path: Path) -> None:
    spool = make_spool(tmp_path / "spool")
    for name in ("alice", "bob", "carol"):
        clocked.mailboxes.record_success(_mailbox(clocked, name))
    seed(clocked, [task_row(TaskStatus.COMPLETED, NOW - timedelta(minutes=1))])
    report = _report(clocked, spool)
    assert report == HealthReport(HealthLevel.HEALTHY, ())
    assert report.message() == "HEALTHY" and int(report.status) == 0
    assert report.as_dict() == {
        "status": "healthy",
        "exit_code": 0,
        "message": "HEALTHY",
        "findings": [],
    }


def test_one_failing_mailbox_and_failed_tasks_warn_in_one_line(
    clocked: MailStore, clock: Clock
) -> None:
    ids = {name: _mailbox(clocked, name) for name in ("alice", "bob", "carol")}
    for user_id in ids.values():
        clocked.mailboxes.record_success(user_id)
    clock.now = NOW + timedelta(minutes=2)
    _fail(clocked, ids["bob"])
    seed(clocked, [task_row(TaskStatus.FAILED, NOW - timedelta(hours=h)) for h in (1, 5, 9, 23)])
    seed(clocked, [task_row(TaskStatus.FAILED, NOW - timedelta(hours=30))])  # outside 24 h
    report = _report(clocked)
    assert report.status is HealthLevel.WARNING and int(report.status) == 1
    assert report.message() == (
        "WARNING: 1 of 3 mailboxes failed their latest fetch: bob (auth: login refused, "
        "since 2026-12-03 12:02 UTC); 4 tasks FAILED in the last 24 h"
    )
    assert report.message().lower().count("warning") == 1
    assert [f.check for f in report.findings] == ["mailboxes", "failed_tasks"]
    data = report.as_dict()
    assert data["status"] == "warning" and data["exit_code"] == 1
    assert [f["level"] for f in data["findings"]] == ["warning", "warning"]
    # One failed task is enough by default; the threshold is a setting.
    assert _report(clocked, thresholds=HealthThresholds(failed_tasks_warning=5)).findings == (
        report.findings[0],
    )
    assert [
        f.check
        for f in _report(clocked, thresholds=HealthThresholds(failed_tasks_warning=None)).findings
    ] == ["mailboxes"]


def test_failed_tasks_are_counted_and_named_over_the_metrics_window(clocked: MailStore) -> None:
    hours = (2, 5, 9, 23)
    seed(clocked, [task_row(TaskStatus.FAILED, NOW - timedelta(hours=h)) for h in hours])
    report = _report(clocked, window_hours=6)
    assert report.message() == "WARNING: 2 tasks FAILED in the last 6 h"
    assert _report(clocked, window_hours=1).message() == "HEALTHY"
    assert _report(clocked, window_hours=48).message() == "WARNING: 4 tasks FAILED in the last 48 h"


def test_only_active_mailboxes_count(clocked: MailStore, clock: Clock) -> None:
    alice, bob = _mailbox(clocked, "alice"), _mailbox(clocked, "bob")
    clocked.mailboxes.record_success(alice)
    _fail(clocked, bob, "connect", "connection refused\n  by 203.0.113.9")
    gone = _mailbox(clocked, "dave")  # disabled later
    moved = _mailbox(clocked, "erin")  # her mail comes through the spool now
    for user_id in (gone, moved):
        _fail(clocked, user_id)
    clocked.users.set_active(gone, False)
    clocked.users.set_setting(moved, "email_config", {"mode": "auto_assign"})
    (finding,) = _report(clocked).findings
    assert finding == Finding(
        HealthLevel.WARNING,
        "mailboxes",
        "1 of 2 mailboxes failed their latest fetch: bob (connect: connection refused by "
        "203.0.113.9, since 2026-12-03 12:00 UTC)",
    )


def test_every_active_mailbox_failing_is_critical_said_once(
    clocked: MailStore, clock: Clock
) -> None:
    ids = [_mailbox(clocked, name) for name in ("alice", "bob", "carol")]
    clocked.mailboxes.record_success(ids[0])
    clock.now = NOW + timedelta(hours=3)
    for user_id in ids:
        _fail(clocked, user_id)
    clock.now = NOW + timedelta(hours=4)
    _fail(clocked, ids[0])
    clocked.mailboxes.pause(ids[2], "3 consecutive authentication failures")
    report = _report(clocked)
    assert report.status is HealthLevel.CRITICAL and int(report.status) == 2
    # "since": the first failure of the current streak (alice failed at 15:00 and 16:00).
    # Not also "no mailbox fetch succeeded for 4 h": that is the same fact.
    assert report.message() == (
        "CRITICAL: 3 of 3 mailboxes failed their latest fetch: "
        "alice (auth: login refused, since 2026-12-03 15:00 UTC), "
        "bob (auth: login refused, since 2026-12-03 15:00 UTC), "
        "carol (paused, auth: login refused, since 2026-12-03 15:00 UTC)"
    )
    # A paused mailbox counts as failing even with no failure recorded (it is not fetched).
    clocked.mailboxes.resume(ids[2])
    clocked.mailboxes.pause(ids[2], "by hand")
    for user_id in ids[:2]:
        clocked.mailboxes.record_success(user_id)
    (finding,) = _report(clocked).findings
    assert finding.level is HealthLevel.WARNING
    assert finding.text.startswith("1 of 3 mailboxes failed their latest fetch: carol (paused")


def test_many_failing_mailboxes_are_named_up_to_five(clocked: MailStore) -> None:
    ids = [_mailbox(clocked, f"u{n}") for n in range(8)]
    for user_id in ids[:7]:
        _fail(clocked, user_id)
        _fail(clocked, user_id)
    (finding,) = _report(clocked).findings
    assert finding.level is HealthLevel.WARNING
    assert finding.text.startswith("7 of 8 mailboxes failed their latest fetch: u0 (auth: ")
    assert finding.text.count("since 2026-12-03 12:00 UTC") == 5
    assert finding.text.endswith(" and 2 more")


def test_no_fetch_succeeded_for_n_intervals_is_critical(clocked: MailStore, clock: Clock) -> None:
    # Nothing fetched yet: no verdict on a fetch that never ran.
    alice, bob = _mailbox(clocked, "alice"), _mailbox(clocked, "bob")
    assert _report(clocked).status is HealthLevel.HEALTHY
    clocked.mailboxes.record_success(alice)
    clock.now = NOW + timedelta(minutes=5)
    clocked.mailboxes.record_success(bob)
    # 3 intervals of 5 minutes after the newest success it is still fine ...
    clock.now = NOW + timedelta(minutes=20)
    assert _report(clocked).status is HealthLevel.HEALTHY
    # ... and critical after that: the fetch is not running.
    clock.now = NOW + timedelta(minutes=21)
    report = _report(clocked)
    assert report.message() == (
        "CRITICAL: no mailbox fetch succeeded for 16 min (the limit is 3 fetch intervals of 5 min)"
    )
    assert report.findings[0].check == "no_fetch"
    # The interval and N are thresholds (the interval comes from the fetch cron).
    hourly = HealthThresholds(fetch_interval_seconds=3600)
    assert _report(clocked, thresholds=hourly).status is HealthLevel.HEALTHY
    assert (
        _report(clocked, thresholds=HealthThresholds(missed_fetches_critical=4)).status
        is HealthLevel.HEALTHY
    )
    assert (
        _report(clocked, thresholds=HealthThresholds(missed_fetches_critical=None)).status
        is HealthLevel.HEALTHY
    )
    # One mailbox failing now: warned about once, and the missed fetches still critical.
    _fail(clocked, bob)
    report = _report(clocked)
    assert [(f.level, f.check) for f in report.findings] == [
        (HealthLevel.CRITICAL, "no_fetch"),
        (HealthLevel.WARNING, "mailboxes"),
    ]
    assert report.message().startswith("CRITICAL: no mailbox fetch succeeded for 16 min")
    assert report.message().count("CRITICAL") == 1 and "WARNING" not in report.message()


def test_spool_backlog_warns_then_becomes_critical(clocked: MailStore, tmp_path: Path) -> None:
    spool = make_spool(tmp_path / "spool")
    for n in range(3):
        write_pair(spool, make_raw(n), ["a@example.org"])
    assert _report(clocked, spool).status is HealthLevel.HEALTHY
    _age_inbox(spool, 1700)
    assert _report(clocked, spool).status is HealthLevel.HEALTHY
    _age_inbox(spool, 1900)
    report = _report(clocked, spool)
    assert report.message() == (
        "WARNING: spool backlog: 3 messages in inbox/, the oldest waiting 31 min (more than 30 min)"
    )
    _age_inbox(spool, 7300)
    report = _report(clocked, spool)
    assert report.message() == (
        "CRITICAL: spool backlog: 3 messages in inbox/, the oldest waiting 2 h 1 min "
        "(more than 2 h)"
    )
    relaxed = HealthThresholds(spool_warning_seconds=600, spool_critical_seconds=None)
    assert _report(clocked, spool, relaxed).status is HealthLevel.WARNING
    off = HealthThresholds(spool_warning_seconds=None, spool_critical_seconds=None)
    assert _report(clocked, spool, off).status is HealthLevel.HEALTHY


def test_stale_tasks_and_spool_failed_warn(clocked: MailStore, tmp_path: Path) -> None:
    spool = make_spool(tmp_path / "spool")
    seed(clocked, [task_row(TaskStatus.RUNNING, NOW - timedelta(seconds=601))])
    report = _report(clocked, spool)
    assert report.message() == (
        "WARNING: 1 task without a heartbeat within the timeout (see: mail-pipeline cleanup-stale)"
    )
    assert _report(clocked, spool, HealthThresholds(stale_tasks_warning=None)).findings == ()
    # Messages in failed/: off by default, a warning when asked for.
    for n in range(2):
        (spool / "failed" / f"x{n}.meta").write_text("{}")
    quiet = HealthThresholds(stale_tasks_warning=None)
    assert _report(clocked, spool, quiet).findings == ()
    strict = HealthThresholds(stale_tasks_warning=None, spool_failed_warning=2)
    assert _report(clocked, spool, strict).message() == "WARNING: 2 messages in spool failed/"


def test_every_rule_at_once_orders_critical_first(
    clocked: MailStore, clock: Clock, tmp_path: Path
) -> None:
    spool = make_spool(tmp_path / "spool")
    write_pair(spool, make_raw(1), ["a@example.org"])
    _age_inbox(spool, 8000)
    only = _mailbox(clocked, "solo")
    _fail(clocked, only)
    seed(clocked, [task_row(TaskStatus.FAILED, NOW - timedelta(hours=1))])
    seed(clocked, [task_row(TaskStatus.RUNNING, NOW - timedelta(seconds=700))])
    report = _report(clocked, spool)
    assert [(f.level, f.check) for f in report.findings] == [
        (HealthLevel.CRITICAL, "mailboxes"),
        (HealthLevel.CRITICAL, "spool_backlog"),
        (HealthLevel.WARNING, "failed_tasks"),
        (HealthLevel.WARNING, "stale_tasks"),
    ]
    line = report.message()
    assert line.startswith("CRITICAL: 1 of 1 mailbox failed their latest fetch: solo (")
    assert "\n" not in line and line.count("CRITICAL") == 1 and "WARNING" not in line
    assert "1 task FAILED in the last 24 h" in line


@pytest.mark.parametrize(
    "field", ["failed_tasks_warning", "spool_warning_seconds", "fetch_interval_seconds"]
)
def test_thresholds_are_checked(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        HealthThresholds(**{field: 0})
    with pytest.raises(ValueError, match=field):
        HealthThresholds(**{field: -1})
