"""The EmailTask state machine: every allowed move works, every other one is refused."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from mail_pipeline.errors import InvalidTransitionError
from mail_pipeline.storage.store import ALLOWED_TRANSITIONS, EmailSource, MailStore, TaskStatus
from mail_pipeline.storage.store.transitions import check_transition, heartbeat_expired

ALL_MOVES = list(itertools.product(TaskStatus, TaskStatus))


def _task_in(store: MailStore, status: TaskStatus) -> str:
    """Return the id of a new task brought to ``status`` through allowed moves."""
    task = store.tasks.create(EmailSource.IMAP)
    if status is TaskStatus.PENDING:
        return task.task_id
    if status in (TaskStatus.RUNNING, TaskStatus.COMPLETED, TaskStatus.FAILED):
        store.tasks.start(task.task_id)
    if status is not TaskStatus.RUNNING:
        store.tasks.transition(task.task_id, status)
    return task.task_id


def test_the_allowed_moves_are_those_of_the_design() -> None:
    assert {
        TaskStatus.PENDING: {TaskStatus.RUNNING, TaskStatus.CANCELLED, TaskStatus.SKIPPED},
        TaskStatus.RUNNING: {
            TaskStatus.COMPLETED,
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
            TaskStatus.SKIPPED,
        },
    } == ALLOWED_TRANSITIONS


@pytest.mark.parametrize(("current", "target"), ALL_MOVES, ids=lambda s: str(s))
def test_each_move_is_allowed_or_refused(
    store: MailStore, current: TaskStatus, target: TaskStatus
) -> None:
    task_id = _task_in(store, current)
    assert store.tasks.get(task_id).status is current
    if target in ALLOWED_TRANSITIONS.get(current, set()):
        after = store.tasks.transition(task_id, target)
        assert after.status is target
        assert (after.completed_at is not None) == target.is_final
    else:
        with pytest.raises(InvalidTransitionError, match=f"{current} -> {target}"):
            store.tasks.transition(task_id, target)
        assert store.tasks.get(task_id).status is current


def test_unknown_state_is_refused(store: MailStore) -> None:
    task = store.tasks.create(EmailSource.HARAKA)
    with pytest.raises(InvalidTransitionError):
        store.tasks.transition(task.task_id, "DONE")


def test_check_transition_needs_no_store() -> None:
    assert check_transition("t", "PENDING", "RUNNING") is TaskStatus.RUNNING
    for current, requested in (("COMPLETED", "RUNNING"), ("PENDING", "DONE"), ("GONE", "FAILED")):
        with pytest.raises(InvalidTransitionError, match=f"{current} -> {requested}"):
            check_transition("t", current, requested)


def test_a_heartbeat_expires_strictly_after_its_timeout() -> None:
    beat = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert not heartbeat_expired(beat, 60, beat + timedelta(seconds=60))
    assert heartbeat_expired(beat, 60, beat + timedelta(seconds=60, microseconds=1))
