"""The ops that span both branches (lock, cleanup, release), through build_op_context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from mail_pipeline.defs.fetch.ops import (
    BranchSummary,
    acquire_fetch_lock,
    cleanup_stale_tasks_op,
    release_fetch_lock,
)
from mail_pipeline.defs.imap.ops import close_imap_fetch
from mail_pipeline.defs.resources import FETCH_LOCK
from mail_pipeline.storage.store import EmailSource, LockGrant, MailStore, TaskStatus
from mail_pipeline_tests.defs.conftest import Rig


def _context(rig: Rig, *keys: str, **kwargs: Any) -> Any:
    return dg.build_op_context(resources={k: rig.resources[k] for k in keys}, **kwargs)


def test_acquire_yields_the_lease_or_nothing(rig: Rig) -> None:
    with _context(rig, "store", "fetch_settings") as context:
        outputs = list(acquire_fetch_lock(context))
    assert len(outputs) == 1
    grant = outputs[0].value
    assert isinstance(grant, LockGrant) and grant.name == FETCH_LOCK
    assert rig.store.locks.live(FETCH_LOCK) is not None
    # Held: no output, two SKIPPED tasks that say who holds it.
    with _context(rig, "store", "fetch_settings") as context:
        assert list(acquire_fetch_lock(context)) == []
    skipped = rig.store.tasks.recent(status=TaskStatus.SKIPPED)
    assert {t.email_source for t in skipped} == {EmailSource.IMAP, EmailSource.HARAKA}


def test_cleanup_op_goes_by_the_heartbeat_not_the_instance(rig: Rig) -> None:
    past = MailStore(rig.store.url, clock=lambda: datetime.now(UTC) - timedelta(hours=1))
    silent = past.tasks.create(EmailSource.IMAP, run_id="killed", status=TaskStatus.RUNNING)
    past.dispose()
    # Unknown to the instance, but its run beats: kept.
    beating = rig.store.tasks.create(
        EmailSource.IMAP, run_id="unknown-run", status=TaskStatus.RUNNING
    )
    grant = LockGrant(FETCH_LOCK, "t", 60)
    with _context(rig, "store", instance=dg.DagsterInstance.ephemeral()) as context:
        assert cleanup_stale_tasks_op(context, lock=grant) == grant
    assert rig.store.tasks.get(silent.task_id).status is TaskStatus.CANCELLED
    assert rig.store.tasks.get(beating.task_id).status is TaskStatus.RUNNING


def test_release_only_with_the_token(rig: Rig) -> None:
    token = rig.store.locks.acquire(FETCH_LOCK, 60)
    assert token
    empty = BranchSummary("imap", "t")
    with _context(rig, "store") as context:
        release_fetch_lock(
            context, lock=LockGrant(FETCH_LOCK, "stolen", 60), imap=empty, spool=empty
        )
    assert rig.store.locks.live(FETCH_LOCK) is not None
    with _context(rig, "store") as context:
        release_fetch_lock(context, lock=LockGrant(FETCH_LOCK, token, 60), imap=empty, spool=empty)
    assert rig.store.locks.get(FETCH_LOCK) is None


def test_a_task_closed_under_the_run_is_recorded_and_the_lease_still_released(
    rig: Rig,
) -> None:
    """(c) cleanup (or anyone) closed the IMAP task while the run still worked on it."""
    token = rig.store.locks.acquire(FETCH_LOCK, 60, run_id="r")
    assert token
    task = rig.store.tasks.create(EmailSource.IMAP, run_id="r", status=TaskStatus.RUNNING)
    rig.store.tasks.mark_cancelled(task.task_id, "stale task cleanup: no heartbeat for 700 s")
    with _context(rig, "store") as context:
        summary = close_imap_fetch(context, task=task.task_id, results=[])
        meta = context.get_output_metadata("result")
    assert meta is not None
    assert meta["task_closed_under_run"] is True and meta["task_status"] == "CANCELLED"
    closed = rig.store.tasks.get(task.task_id)
    assert closed.status is TaskStatus.CANCELLED  # left as cleanup made it
    assert closed.log[-1]["level"] == "WARNING"
    assert "after the task was closed" in closed.log[-1]["message"]
    with _context(rig, "store") as context:
        release_fetch_lock(
            context,
            lock=LockGrant(FETCH_LOCK, token, 60),
            imap=summary,
            spool=BranchSummary("haraka", ""),
        )
    assert rig.store.locks.get(FETCH_LOCK) is None
