"""What an EmailTask is and how it may change: its states, the allowed moves, the staleness rule.

States: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, SKIPPED. Allowed moves:
PENDING -> RUNNING | CANCELLED | SKIPPED; RUNNING -> COMPLETED | FAILED | CANCELLED | SKIPPED.
Every other move raises :class:`~mail_pipeline.errors.InvalidTransitionError`
(:func:`check_transition`); the repository (:mod:`mail_pipeline.storage.store.tasks`) checks
each move inside the transaction that makes it.

Liveness: an open task has a heartbeat (``heartbeat_at``), set when it is created or started
and renewed by the live run (:class:`mail_pipeline.storage.heartbeat.TaskHeartbeat`). A task
is *stale* when it is open and its heartbeat is older than its ``timeout_seconds``
(:func:`heartbeat_expired`, the one run-liveness rule), whatever its age.

The read-only copies of a task row (:class:`TaskSnapshot`, :class:`TaskCounters`,
:class:`TaskFinish`) live here too: they are what the state machine hands out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from mail_pipeline.errors import InvalidTransitionError
from mail_pipeline.storage.store.models import EmailTask


class TaskStatus(StrEnum):
    """States of an EmailTask."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"

    @property
    def is_final(self) -> bool:
        """True for the states a task never leaves."""
        return self not in (TaskStatus.PENDING, TaskStatus.RUNNING)


class EmailSource(StrEnum):
    """Where a task fetches from."""

    IMAP = "IMAP_EMAIL_FETCH"
    HARAKA = "HARAKA_EMAIL_FETCH"


ALLOWED_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.PENDING: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED, TaskStatus.SKIPPED}),
    TaskStatus.RUNNING: frozenset(
        {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.SKIPPED}
    ),
}


def heartbeat_expired(heartbeat_at: datetime, timeout_seconds: int, now: datetime) -> bool:
    """Return True when a heartbeat taken at ``heartbeat_at`` is older than ``timeout_seconds``.

    The one staleness rule of the pipeline (cleanup, metrics and ``tasks list`` use it).
    """
    return now - heartbeat_at > timedelta(seconds=timeout_seconds)


def check_transition(task_id: str, current: str, requested: str) -> TaskStatus:
    """Return ``requested`` as a :class:`TaskStatus` if the move from ``current`` is allowed.

    Raises:
        InvalidTransitionError: the state machine does not allow the move (including to an
            unknown state).
    """
    try:
        target = TaskStatus(requested)
        source = TaskStatus(current)
    except ValueError:
        raise InvalidTransitionError(task_id, current, requested) from None
    if target not in ALLOWED_TRANSITIONS.get(source, frozenset()):
        raise InvalidTransitionError(task_id, current, requested)
    return target


@dataclass(frozen=True)
class TaskCounters:
    """Message counters of a task. Used both as totals and as increments."""

    fetched: int = 0
    saved: int = 0
    failed: int = 0
    duplicate: int = 0

    def __add__(self, other: TaskCounters) -> TaskCounters:
        return TaskCounters(
            self.fetched + other.fetched,
            self.saved + other.saved,
            self.failed + other.failed,
            self.duplicate + other.duplicate,
        )


@dataclass(frozen=True)
class TaskSnapshot:
    """A read-only copy of an EmailTask row."""

    task_id: str
    email_source: EmailSource
    status: TaskStatus
    run_id: str | None
    user_id: int | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    heartbeat_at: datetime
    timeout_seconds: int
    counters: TaskCounters
    details: dict[str, Any] = field(repr=False)
    error_message: str

    @property
    def log(self) -> list[dict[str, Any]]:
        """The execution log: dicts with ``timestamp``, ``step``, ``message``, ``level``."""
        return list(self.details.get("log", []))

    def is_stale(self, now: datetime) -> bool:
        """True when the task is open and its heartbeat is older than its ``timeout_seconds``."""
        return not self.status.is_final and heartbeat_expired(
            self.heartbeat_at, self.timeout_seconds, now
        )

    def heartbeat_age(self, now: datetime) -> timedelta:
        """How long ago the task's heartbeat was last renewed."""
        return now - self.heartbeat_at

    def age(self, now: datetime) -> timedelta:
        """How long ago the task was created."""
        return now - self.created_at


def snapshot(row: EmailTask) -> TaskSnapshot:
    """Return a read-only copy of the EmailTask ``row``."""
    return TaskSnapshot(
        task_id=row.task_id,
        email_source=EmailSource(row.email_source),
        status=TaskStatus(row.status),
        run_id=row.run_id,
        user_id=row.user_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        completed_at=row.completed_at,
        heartbeat_at=row.heartbeat_at,
        timeout_seconds=row.timeout_seconds,
        counters=TaskCounters(
            row.emails_fetched, row.emails_saved, row.emails_failed, row.emails_duplicate
        ),
        details=dict(row.details or {}),
        error_message=row.error_message or "",
    )


@dataclass(frozen=True)
class TaskFinish:
    """What :meth:`~mail_pipeline.storage.store.tasks.TaskRepository.finish` did.

    ``already_closed`` is True when the task had been closed under its run (by stale-task
    cleanup, a run-status sensor or an operator) before the run finished it: the task then
    keeps that state and the run's outcome is only logged.
    """

    task: TaskSnapshot
    already_closed: bool

    def note(self) -> str:
        """Return one line saying how the task was closed before its run finished it."""
        reason = f" ({self.task.error_message})" if self.task.error_message else ""
        return f"task {self.task.task_id} was already {self.task.status.value}{reason}"
