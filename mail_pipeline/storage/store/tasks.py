"""The EmailTask repository: creation, checked state moves, heartbeats, counters, the log.

The states and the moves allowed between them are :mod:`mail_pipeline.storage.store.transitions`;
this module applies them to rows. Moves are checked inside the transaction that makes them
(the row is locked on PostgreSQL), so two workers can never both close a task. The heartbeat
is renewed by :meth:`TaskRepository.heartbeat` (driven by
:class:`mail_pipeline.storage.heartbeat.TaskHeartbeat`); staleness is judged by
:func:`~mail_pipeline.storage.store.transitions.heartbeat_expired`.

Error and log text often carries a server's or a message's words: it goes through
:func:`~mail_pipeline.storage.store.columns.clean_text` (NUL removed, cut to its column), so a
NUL in an error never makes PostgreSQL refuse the row that records it.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mail_pipeline.errors import NotFoundError
from mail_pipeline.storage.store.base import Repository
from mail_pipeline.storage.store.columns import clean_json
from mail_pipeline.storage.store.models import EmailTask
from mail_pipeline.storage.store.task_log import append_log, error_text, log_entry
from mail_pipeline.storage.store.transitions import (
    EmailSource,
    TaskCounters,
    TaskFinish,
    TaskSnapshot,
    TaskStatus,
    check_transition,
    heartbeat_expired,
    snapshot,
)


class TaskRepository(Repository):
    """EmailTask rows: creation, state moves, counters and the execution log."""

    def create(
        self,
        email_source: EmailSource | str,
        *,
        task_id: str | None = None,
        run_id: str | None = None,
        user_id: int | None = None,
        timeout_seconds: int = 600,
        status: TaskStatus = TaskStatus.PENDING,
        message: str = "task created",
    ) -> TaskSnapshot:
        """Create a task and return it.

        ``status`` may be PENDING (the default) or RUNNING (a task that starts at once; its
        ``started_at`` is set). ``task_id`` defaults to a fresh UUID.

        Raises:
            ValueError: bad source, status or timeout.
        """
        source = EmailSource(email_source)
        if status not in (TaskStatus.PENDING, TaskStatus.RUNNING):
            raise ValueError(f"a task is created PENDING or RUNNING, not {status}")
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        now = self._now()
        row = EmailTask(
            task_id=task_id or str(uuid.uuid4()),
            email_source=source.value,
            status=status.value,
            run_id=run_id,
            user_id=user_id,
            created_at=now,
            updated_at=now,
            started_at=now if status is TaskStatus.RUNNING else None,
            heartbeat_at=now,
            timeout_seconds=timeout_seconds,
            emails_fetched=0,
            emails_saved=0,
            emails_failed=0,
            emails_duplicate=0,
            details={"log": [log_entry(now, "create", message, "INFO")]},
            error_message="",
        )
        with self._transaction() as session:
            session.add(row)
            session.flush()
            return snapshot(row)

    def get(self, task_id: str) -> TaskSnapshot:
        """Return the task ``task_id``.

        Raises:
            NotFoundError: no such task.
        """
        with self._transaction() as session:
            return snapshot(self._locked(session, task_id))

    def recent(
        self,
        *,
        status: TaskStatus | str | None = None,
        source: EmailSource | str | None = None,
        run_id: str | None = None,
        limit: int = 50,
    ) -> list[TaskSnapshot]:
        """Return tasks, newest first, filtered by status, source and run id."""
        stmt = select(EmailTask).order_by(EmailTask.created_at.desc(), EmailTask.id.desc())
        if status is not None:
            stmt = stmt.where(EmailTask.status == TaskStatus(status).value)
        if source is not None:
            stmt = stmt.where(EmailTask.email_source == EmailSource(source).value)
        if run_id is not None:
            stmt = stmt.where(EmailTask.run_id == run_id)
        with self._transaction() as session:
            return [snapshot(r) for r in session.scalars(stmt.limit(limit))]

    def with_prefix(self, prefix: str, *, limit: int = 3) -> tuple[int, list[TaskSnapshot]]:
        """Return how many tasks have an ID starting with ``prefix``, and the first ``limit``
        of them by ID (one indexed range query; ``%`` and ``_`` in ``prefix`` match themselves).
        """
        match = EmailTask.task_id.startswith(prefix, autoescape=True)
        with self._reading() as session:
            total = session.scalar(select(func.count()).select_from(EmailTask).where(match))
            rows = session.scalars(
                select(EmailTask).where(match).order_by(EmailTask.task_id).limit(limit)
            )
            return int(total or 0), [snapshot(r) for r in rows]

    def open_tasks(self) -> list[TaskSnapshot]:
        """Return every PENDING or RUNNING task, oldest first."""
        stmt = (
            select(EmailTask)
            .where(EmailTask.status.in_([TaskStatus.PENDING.value, TaskStatus.RUNNING.value]))
            .order_by(EmailTask.created_at, EmailTask.id)
        )
        with self._transaction() as session:
            return [snapshot(r) for r in session.scalars(stmt)]

    def count_by_status(self) -> dict[str, int]:
        """Return the number of tasks in each status (statuses with none are absent)."""
        stmt = select(EmailTask.status, func.count()).group_by(EmailTask.status)
        with self._transaction() as session:
            return {status: n for status, n in session.execute(stmt).all()}

    def transition(
        self,
        task_id: str,
        status: TaskStatus | str,
        *,
        message: str = "",
        error: str | None = None,
        step: str = "status",
        level: str = "INFO",
    ) -> TaskSnapshot:
        """Move a task to ``status``, logging the move, and return the task.

        RUNNING sets ``started_at`` and renews the heartbeat; a final state sets
        ``completed_at``; ``error`` (if given) becomes ``error_message``.

        Raises:
            NotFoundError: no such task.
            InvalidTransitionError: the state machine does not allow the move.
        """
        with self._transaction() as session:
            row = self._locked(session, task_id)
            self._move(row, str(status), message=message, error=error, step=step, level=level)
            return snapshot(row)

    def _move(
        self,
        row: EmailTask,
        status: str,
        *,
        message: str,
        error: str | None,
        step: str,
        level: str,
    ) -> None:
        """Apply a checked state move to the locked ``row`` (raises InvalidTransitionError)."""
        target = check_transition(row.task_id, row.status, status)
        now = self._now()
        previous = row.status
        row.status = target.value
        row.updated_at = now
        if target is TaskStatus.RUNNING:
            row.heartbeat_at = now
            if row.started_at is None:
                row.started_at = now
        if target.is_final:
            row.completed_at = now
        if error is not None:
            row.error_message = error_text(error)
        text = f"{previous} -> {target.value}" + (f": {message}" if message else "")
        append_log(row, log_entry(now, step, text, level))

    def heartbeat(self, task_id: str) -> bool:
        """Renew the heartbeat of the open task ``task_id`` (one conditional UPDATE).

        Returns:
            True if renewed; False if the task is closed already (it is left as it is).

        Raises:
            NotFoundError: no such task.
        """
        stmt = (
            update(EmailTask)
            .where(
                EmailTask.task_id == task_id,
                EmailTask.status.in_([TaskStatus.PENDING.value, TaskStatus.RUNNING.value]),
            )
            .values(heartbeat_at=self._now())
        )
        with self._transaction() as session:
            if session.execute(stmt).rowcount:  # type: ignore[attr-defined]
                return True
            if session.scalar(select(EmailTask.id).where(EmailTask.task_id == task_id)) is None:
                raise NotFoundError(f"no email task {task_id!r}")
            return False

    def cancel_if_stale(self, task_id: str, reason: str) -> TaskSnapshot | None:
        """Cancel the task if it is stale, checked in the transaction that cancels it.

        A heartbeat renewed after the caller looked keeps the task open: the row is locked
        (PostgreSQL) or the write serialised (SQLite) before staleness is re-checked.

        Returns:
            The cancelled task, or None when it is closed already or its heartbeat is fresh.

        Raises:
            NotFoundError: no such task.
        """
        with self._transaction() as session:
            row = self._locked(session, task_id)
            if TaskStatus(row.status).is_final or not heartbeat_expired(
                row.heartbeat_at, row.timeout_seconds, self._now()
            ):
                return None
            self._move(
                row,
                TaskStatus.CANCELLED.value,
                message=reason,
                error=reason,
                step="cancel",
                level="WARNING",
            )
            return snapshot(row)

    def finish(
        self,
        task_id: str,
        *,
        error: str | None = None,
        message: str = "",
        step: str | None = None,
        problems: str | None = None,
    ) -> TaskFinish:
        """Close the task its run is done with: COMPLETED, or FAILED with ``error``.

        ``problems`` (with no ``error``) completes the task with that text as its
        ``error_message``: the task finished, but part of its work failed (e.g. "2 of 6
        mailboxes failed: ..."); it is also logged as a WARNING.

        A run can find its task closed under it (stale-task cleanup, a run-status sensor, an
        operator): the task then keeps its final state, the outcome is appended to its log as
        a WARNING, and ``already_closed`` is set, so finishing never raises for that.

        Returns:
            The task as left, and whether it had been closed already.

        Raises:
            NotFoundError: no such task.
            InvalidTransitionError: the task is still PENDING (it never started).
        """
        with self._transaction() as session:
            row = self._locked(session, task_id)
            if TaskStatus(row.status).is_final:
                outcome = (
                    f"FAILED: {error}"
                    if error is not None
                    else "COMPLETED"
                    + (f": {message}" if message else "")
                    + (f" ({problems})" if problems else "")
                )
                now = self._now()
                append_log(
                    row,
                    log_entry(
                        now,
                        step or "finish",
                        f"the run finished after the task was closed "
                        f"({row.status}); its outcome was {outcome}",
                        "WARNING",
                    ),
                )
                row.updated_at = now
                return TaskFinish(snapshot(row), already_closed=True)
            if error is not None:
                self._move(
                    row,
                    TaskStatus.FAILED.value,
                    message=error,
                    error=error,
                    step=step or "fail",
                    level="ERROR",
                )
            else:
                self._move(
                    row,
                    TaskStatus.COMPLETED.value,
                    message=message + (f"; {problems}" if message and problems else problems or ""),
                    error=problems or None,
                    step=step or "complete",
                    level="WARNING" if problems else "INFO",
                )
            return TaskFinish(snapshot(row), already_closed=False)

    def start(self, task_id: str, message: str = "") -> TaskSnapshot:
        """PENDING -> RUNNING. Raises as :meth:`transition`."""
        return self.transition(task_id, TaskStatus.RUNNING, message=message, step="start")

    def mark_completed(
        self, task_id: str, counters: TaskCounters | None = None, message: str = ""
    ) -> TaskSnapshot:
        """RUNNING -> COMPLETED, first adding ``counters``. Raises as :meth:`transition`."""
        if counters is not None:
            self.add_counters(task_id, counters)
        return self.transition(task_id, TaskStatus.COMPLETED, message=message, step="complete")

    def mark_failed(
        self, task_id: str, error: str, counters: TaskCounters | None = None
    ) -> TaskSnapshot:
        """RUNNING -> FAILED with ``error``. Raises as :meth:`transition`."""
        if counters is not None:
            self.add_counters(task_id, counters)
        return self.transition(
            task_id, TaskStatus.FAILED, message=error, error=error, step="fail", level="ERROR"
        )

    def mark_cancelled(self, task_id: str, reason: str) -> TaskSnapshot:
        """PENDING/RUNNING -> CANCELLED with ``reason``. Raises as :meth:`transition`."""
        return self.transition(
            task_id,
            TaskStatus.CANCELLED,
            message=reason,
            error=reason,
            step="cancel",
            level="WARNING",
        )

    def mark_skipped(self, task_id: str, reason: str) -> TaskSnapshot:
        """PENDING/RUNNING -> SKIPPED with ``reason``. Raises as :meth:`transition`."""
        return self.transition(task_id, TaskStatus.SKIPPED, message=reason, step="skip")

    def add_execution_log(self, task_id: str, step: str, message: str, level: str = "INFO") -> None:
        """Append an entry to the task's execution log (kept to the last 500 entries).

        Raises:
            NotFoundError: no such task.
        """
        with self._transaction() as session:
            row = self._locked(session, task_id)
            now = self._now()
            append_log(row, log_entry(now, step, message, level))
            row.updated_at = now

    def add_counters(self, task_id: str, counters: TaskCounters) -> None:
        """Add ``counters`` to the task's counters atomically (safe from parallel workers).

        Raises:
            NotFoundError: no such task.
        """
        stmt = (
            update(EmailTask)
            .where(EmailTask.task_id == task_id)
            .values(
                emails_fetched=EmailTask.emails_fetched + counters.fetched,
                emails_saved=EmailTask.emails_saved + counters.saved,
                emails_failed=EmailTask.emails_failed + counters.failed,
                emails_duplicate=EmailTask.emails_duplicate + counters.duplicate,
                updated_at=self._now(),
            )
        )
        with self._transaction() as session:
            if session.execute(stmt).rowcount == 0:  # type: ignore[attr-defined]
                raise NotFoundError(f"no email task {task_id!r}")

    def set_detail(self, task_id: str, key: str, value: Any) -> None:
        """Set ``details[key] = value`` (JSON-serialisable; ``log`` is reserved).

        Raises:
            NotFoundError: no such task.
            ValueError: ``key`` is ``"log"``.
        """
        if key == "log":
            raise ValueError("details['log'] is the execution log: use add_execution_log")
        with self._transaction() as session:
            row = self._locked(session, task_id)
            details = dict(row.details or {})
            details[key] = clean_json(value)
            row.details = details
            row.updated_at = self._now()

    def _locked(self, session: Session, task_id: str) -> EmailTask:
        row = session.scalars(
            select(EmailTask).where(EmailTask.task_id == task_id).with_for_update()
        ).one_or_none()
        if row is None:
            raise NotFoundError(f"no email task {task_id!r}")
        return row
