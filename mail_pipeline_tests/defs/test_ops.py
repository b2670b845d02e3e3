"""Single ops, through build_op_context."""

from __future__ import annotations

from typing import Any

import dagster as dg

from mail_pipeline.defs.ops import (
    BranchSummary,
    LockGrant,
    acquire_fetch_lock,
    cleanup_stale_tasks_op,
    mapping_key,
    release_fetch_lock,
)
from mail_pipeline.defs.resources import FETCH_LOCK
from mail_pipeline.store import EmailSource, TaskStatus
from mail_pipeline_tests.defs.conftest import Rig


def _context(rig: Rig, *keys: str, **kwargs: Any) -> dg.OpExecutionContext:
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


def test_cleanup_cancels_tasks_of_runs_the_instance_does_not_know(rig: Rig) -> None:
    task = rig.store.tasks.create(EmailSource.IMAP, run_id="unknown-run",
                                  status=TaskStatus.RUNNING)
    grant = LockGrant(FETCH_LOCK, "t", 60)
    with _context(rig, "store", instance=dg.DagsterInstance.ephemeral()) as context:
        assert cleanup_stale_tasks_op(context, lock=grant) == grant
    # The run is unknown to this instance: the task can never finish.
    assert rig.store.tasks.get(task.task_id).status is TaskStatus.CANCELLED


def test_release_only_with_the_token(rig: Rig) -> None:
    token = rig.store.locks.acquire(FETCH_LOCK, 60)
    assert token
    empty = BranchSummary("imap", "t")
    with _context(rig, "store") as context:
        release_fetch_lock(context, lock=LockGrant(FETCH_LOCK, "stolen", 60), imap=empty,
                           spool=empty)
    assert rig.store.locks.live(FETCH_LOCK) is not None
    with _context(rig, "store") as context:
        release_fetch_lock(context, lock=LockGrant(FETCH_LOCK, token, 60), imap=empty,
                           spool=empty)
    assert rig.store.locks.get(FETCH_LOCK) is None


def test_mapping_keys_are_readable_and_valid() -> None:
    assert mapping_key("alice", 1) == "alice_1"
    assert mapping_key("bob.smith@example.org", 22) == "bob_smith_example_org_22"
