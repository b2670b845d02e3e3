"""The mail_metrics asset: every fetch run records one point of ordered, unit-labelled series,
counters per interval, zero-only series left out, and the health verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from mail_pipeline.defs.fetch.assets import fetch_step
from mail_pipeline.defs.fetch.jobs import email_fetch_job
from mail_pipeline.defs.maintenance.assets import (
    HEALTH_KEY,
    MAIL_METRICS,
    RECORDING_LOCK,
    TOTALS_KEY,
    mail_metrics_spec,
)
from mail_pipeline.defs.spool.jobs import spool_ingest_job
from mail_pipeline.maintenance.metric_points import (
    KEYS,
    SAVED_ABOVE_MARK,
    SAVED_MARK,
    SAVED_TOP,
    series_of,
)
from mail_pipeline.storage.store import TaskStatus
from mail_pipeline_tests.defs.conftest import Rig, materializations
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.fixtures.task_rows import seed, task_row


def _message(n: int, to: str) -> bytes:
    return (
        f"From: x@example.net\r\nTo: {to}\r\nSubject: m {n}\r\nMessage-ID: <cb-{n}-{to}>\r\n"
        f"Date: Tue, 01 Sep 2026 10:00:00 +0000\r\n\r\nhello {n}\r\n"
    ).encode()


def _point(result: dg.ExecuteInProcessResult) -> dg.AssetMaterialization:
    (mat,) = result.asset_materializations_for_node(fetch_step("release_fetch_lock"))
    assert mat.asset_key == MAIL_METRICS
    return mat


def test_every_fetch_run_records_a_point_of_the_series_the_ui_plots(
    rig: Rig, dovecot: DovecotServer
) -> None:
    user, login = rig.add_imap_user(dovecot, "mia")
    rig.add_imap_user(dovecot, "noah", password="not the password")
    dovecot.append(login, _message(1, "mia@example.org"))
    instance = dg.DagsterInstance.ephemeral()

    def run() -> dg.AssetMaterialization:
        # noah's failure may fail the run, after release_fetch_lock recorded the point.
        result = email_fetch_job.execute_in_process(
            resources=rig.resources, instance=instance, raise_on_error=False
        )
        return _point(result)

    first = run()
    dovecot.append(login, _message(2, "mia@example.org"))
    dovecot.append(login, _message(3, "mia@example.org"))
    second = run()
    third = run()
    plotted = set(KEYS.values())
    for mat in (first, second, third):
        keys = [k for k in mat.metadata if k not in (TOTALS_KEY, HEALTH_KEY)]
        # Only the known series, in the order an operator reads (which the UI's sort keeps).
        assert set(keys) <= plotted and keys == sorted(keys)
        for key in keys:
            assert isinstance(mat.metadata[key], dg.IntMetadataValue | dg.FloatMetadataValue)
        assert isinstance(mat.metadata[TOTALS_KEY], dg.JsonMetadataValue)
        # The health verdict rides along: noah's wrong password is named, once.
        health = mat.metadata[HEALTH_KEY]
        assert isinstance(health, dg.TextMetadataValue) and mat.description == health.value
        text = health.value or ""
        assert text.startswith("WARNING: 1 of 2 mailboxes failed their latest fetch: noah (")
        assert "auth: login to IMAP" in text and text.count("noah") == 1
        assert mat.metadata[KEYS["failing_mailboxes"]].value == 1
        assert mat.metadata[KEYS["active_mailboxes"]].value == 2
        # Series that were only ever 0 are left out.
        for series_id in ("spool_backlog", "stale_tasks", "tasks_deleted", "spool_failed"):
            assert KEYS[series_id] not in mat.metadata
    saved = KEYS["messages_saved"]
    # Counters per interval: the first point is the baseline (1 message stored so far), then
    # the 2 new messages, then none - still plotted, since the series is not zero-only.
    assert saved not in first.metadata
    assert second.metadata[saved].value == 2 and third.metadata[saved].value == 0
    totals = third.metadata[TOTALS_KEY]
    assert isinstance(totals, dg.JsonMetadataValue)
    # The store counts the saves above a message id the points carry along.
    newest = max(m.id for m in rig.store.messages.summaries(user))
    assert totals.data == {
        SAVED_MARK: newest,
        SAVED_ABOVE_MARK: 0,
        SAVED_TOP: newest,
        "tasks_deleted": 0,
    }
    assert rig.store.messages.count(user) == 3
    history = materializations(instance)
    assert len(history) == 3 and history[0][saved] == 0 and history[1][saved] == 2


def test_a_run_that_finds_another_recording_skips_its_point_and_loses_no_count(
    rig: Rig, dovecot: DovecotServer
) -> None:
    _, login = rig.add_imap_user(dovecot, "ola")
    dovecot.append(login, _message(1, "ola@example.org"))
    instance = dg.DagsterInstance.ephemeral()

    def run() -> dg.ExecuteInProcessResult:
        return email_fetch_job.execute_in_process(resources=rig.resources, instance=instance)

    run()  # the baseline point
    dovecot.append(login, _message(2, "ola@example.org"))
    other = rig.store.locks.acquire(RECORDING_LOCK, 60, owner_info="another run")
    assert other is not None
    busy = run()  # saves message 2 while the other run holds the recording lease
    assert busy.success and not busy.asset_materializations_for_node(
        fetch_step("release_fetch_lock")
    )
    assert rig.store.locks.release(RECORDING_LOCK, other)
    dovecot.append(login, _message(3, "ola@example.org"))
    after = _point(run())
    # Both runs' messages are in the next point's delta: skipping a point loses no count.
    assert after.metadata[KEYS["messages_saved"]].value == 2
    assert rig.store.locks.get(RECORDING_LOCK) is None  # released after the point


def test_the_asset_says_what_each_series_means() -> None:
    description = mail_metrics_spec.description or ""
    assert "per interval" in description
    assert "N h is the window of MAIL_PIPELINE_METRICS_WINDOW_HOURS (24 by default)" in (
        description
    )
    for rank, series in enumerate(series_of(None), start=1):
        assert f"**{series.key(rank)}**: {series.description}" in description
    assert "**02 failed tasks, N h [tasks]**: EmailTasks that ended FAILED in the last N h" in (
        description
    )


def test_a_point_counts_and_names_the_window_of_the_setting(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAIL_PIPELINE_METRICS_WINDOW_HOURS", "6")
    now = datetime.now(UTC)
    seed(
        rig.store,
        [task_row(TaskStatus.FAILED, now - timedelta(hours=h), duplicate=2) for h in (2, 10)],
    )
    resources = {k: rig.resources[k] for k in ("store", "attachments", "spool")}
    result = spool_ingest_job.execute_in_process(
        resources=resources, instance=dg.DagsterInstance.ephemeral()
    )
    (mat,) = result.asset_materializations_for_node("ingest_spool_now")
    assert mat.metadata["02 failed tasks, 6 h [tasks]"].value == 1
    assert mat.metadata["11 duplicates, 6 h [messages]"].value == 2
    assert KEYS["failed_tasks_24h"] not in mat.metadata
    assert mat.metadata[HEALTH_KEY].value == "WARNING: 1 task FAILED in the last 6 h"
