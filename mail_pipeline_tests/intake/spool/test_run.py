"""One spool ingest pass as a fetch run makes it, without Dagster: timed, measured, reported.

The store runs on SQLite and PostgreSQL; the spool is a real directory written as Haraka does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mail_pipeline.errors import LeaseLostError
from mail_pipeline.intake.spool.ingest import SpoolIngestService
from mail_pipeline.intake.spool.run import MAX_PROBLEMS_LOGGED, run_ingest
from mail_pipeline.maintenance.metrics import spool_metrics
from mail_pipeline.storage.store import EmailSource, LockGrant, MailStore, TaskStatus
from mail_pipeline_tests.fixtures.spool_files import make_raw, make_spool, write_pair


def _service(store: MailStore, spool_dir: Path, tmp_path: Path) -> SpoolIngestService:
    return SpoolIngestService(store, spool_dir, tmp_path / "attachments", max_size=2000)


def test_a_pass_is_timed_measured_and_its_problems_reported(
    store: MailStore, tmp_path: Path
) -> None:
    store.users.add("ann", "ann@example.org")
    spool_dir = make_spool(tmp_path / "spool")
    write_pair(spool_dir, make_raw(1, to="ann@example.org"), ["ann@example.org"])
    big = write_pair(
        spool_dir, make_raw(2, to="ann@example.org") + b"x" * 5000, ["ann@example.org"]
    )

    run = run_ingest(
        _service(store, spool_dir, tmp_path), run_id="r1", measure=lambda: spool_metrics(spool_dir)
    )

    assert run.result.saved == 1 and run.result.failed == 1
    task = store.tasks.get(run.result.task_id or "")
    assert task.email_source is EmailSource.HARAKA and task.status is TaskStatus.COMPLETED
    assert task.run_id == "r1"
    meta = run.metadata()
    assert meta["found"] == 2 and meta["messages_saved"] == 1 and meta["failed"] == 1
    assert meta["task_closed_under_run"] is False and meta["seconds"] >= 0
    assert run.status is not None and run.status.inbox_ready == 0 and run.status.failed == 1
    (line,) = run.warnings
    assert line.startswith("spool: ") and big in line


def test_a_failed_measurement_is_only_a_warning(store: MailStore, tmp_path: Path) -> None:
    store.users.add("bea", "bea@example.org")
    spool_dir = make_spool(tmp_path / "spool")
    write_pair(spool_dir, make_raw(3, to="bea@example.org"), ["bea@example.org"])
    broken = make_spool(tmp_path / "broken")  # a spool whose inbox is a symlink
    (broken / "inbox").rmdir()
    (broken / "inbox").symlink_to(tmp_path)

    run = run_ingest(
        _service(store, spool_dir, tmp_path), run_id="r2", measure=lambda: spool_metrics(broken)
    )

    assert run.result.saved == 1 and run.status is None
    (line,) = run.warnings
    assert line.startswith("spool status not measured: SpoolError: ")
    assert run_ingest(_service(store, spool_dir, tmp_path), run_id="r3").status is None


def test_problems_logged_are_capped(store: MailStore, tmp_path: Path) -> None:
    spool_dir = make_spool(tmp_path / "spool")
    for n in range(MAX_PROBLEMS_LOGGED + 3):
        write_pair(spool_dir, make_raw(n) + b"x" * 5000, ["nobody@example.org"])
    run = run_ingest(_service(store, spool_dir, tmp_path), run_id="r4")
    assert run.result.failed == MAX_PROBLEMS_LOGGED + 3
    assert len(run.warnings) == MAX_PROBLEMS_LOGGED


def test_a_lease_held_by_another_run_stops_the_pass(store: MailStore, tmp_path: Path) -> None:
    spool_dir = make_spool(tmp_path / "spool")
    write_pair(spool_dir, make_raw(4), ["nobody@example.org"])
    assert store.locks.acquire("email_fetch", 60, run_id="other")
    with pytest.raises(LeaseLostError):
        run_ingest(
            _service(store, spool_dir, tmp_path),
            run_id="r5",
            lease=LockGrant("email_fetch", "not-the-token", 60),
        )
    (task,) = store.tasks.recent(run_id="r5")
    assert task.status is TaskStatus.FAILED
    assert len(list((spool_dir / "inbox").glob("*.meta"))) == 1
