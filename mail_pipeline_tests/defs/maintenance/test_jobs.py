"""cleanup_tasks_job: a dry run, then real runs, each recording the metrics asset."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from mail_pipeline.defs.maintenance.jobs import cleanup_tasks_job
from mail_pipeline.maintenance.metric_points import KEYS
from mail_pipeline.storage.store import TaskStatus
from mail_pipeline_tests.defs.conftest import Rig, materializations, output_metadata
from mail_pipeline_tests.fixtures.task_rows import seed, task_row


def _message(n: int, to: str) -> bytes:
    return (
        f"From: x@example.net\r\nTo: {to}\r\nSubject: m {n}\r\nMessage-ID: <cb-{n}-{to}>\r\n"
        f"Date: Tue, 01 Sep 2026 10:00:00 +0000\r\n\r\nhello {n}\r\n"
    ).encode()


def test_cleanup_job_dry_run_then_real_run(rig: Rig) -> None:
    now = datetime.now(UTC)
    seed(
        rig.store,
        [task_row(TaskStatus.COMPLETED, now - timedelta(days=2)) for _ in range(7)]
        + [task_row(TaskStatus.FAILED, now - timedelta(days=3), error="x")]
        + [task_row(TaskStatus.RUNNING, now - timedelta(days=30))],
    )
    old_file = rig.spool_dir / "processed" / "2026-01-01" / "a.eml"
    old_file.parent.mkdir(parents=True)
    old_file.write_bytes(b"x" * 100)
    stamp = time.time() - 9 * 86400
    os.utime(old_file, (stamp, stamp))
    instance = dg.DagsterInstance.ephemeral()

    def run(**config: object) -> dg.ExecuteInProcessResult:
        return cleanup_tasks_job.execute_in_process(
            resources=rig.resources,
            instance=instance,
            run_config={"ops": {"apply_retention": {"config": config}}},
        )

    dry = run(dry_run=True)
    assert dry.success
    meta = output_metadata(dry, "apply_retention")
    assert meta["dry_run"] is True and meta["tasks_deleted"] == 7
    assert meta["processed_files_deleted"] == 1 and old_file.exists()
    assert sum(rig.store.tasks.count_by_status().values()) == 9

    real = run(batch_size=3)
    assert real.success
    meta = output_metadata(real, "apply_retention")
    assert meta["tasks_deleted"] == 7 and meta["tasks_deleted_completed"] == 7
    assert meta["tasks_deleted_failed"] == 0 and meta["task_batches"] == 3
    assert meta["processed_bytes_deleted"] == 100 and not old_file.exists()
    assert rig.store.tasks.count_by_status() == {"FAILED": 1, "RUNNING": 1}
    assert rig.store.maintenance.audit_count() == 7

    # A longer failed-task retention than the default, and then a shorter one.
    assert output_metadata(run(failed_days=2), "apply_retention")["tasks_deleted_failed"] == 1
    # Every run recorded the metrics asset too: deletions per interval, not a running total
    # (the first point only sets the baseline, and a series that was only ever 0 is left out).
    history = materializations(instance)
    deleted = KEYS["tasks_deleted"]
    assert len(history) == 3 and deleted not in history[2]
    assert (history[1][deleted], history[0][deleted]) == (7, 1)
