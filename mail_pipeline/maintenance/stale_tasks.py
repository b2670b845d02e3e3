"""Stale-task cleanup: the seed's ``cleanup_stale_tasks`` and ``startup_cleanup``, done right.

The seed cancelled EVERY PENDING/RUNNING task, including the fresh ones of a run still working.
Here staleness is decided by the task's heartbeat, which the live run renews
(:class:`mail_pipeline.storage.heartbeat.TaskHeartbeat`): a task is cancelled exactly when it is
open and its heartbeat is older than its ``timeout_seconds``. Neither its age nor what Dagster
says about its run counts: a run killed with ``kill -9`` that Dagster still shows STARTED stops
beating and its tasks are closed; a run blocked on a silent IMAP server keeps beating and its
tasks are kept, however old. The check is repeated in the transaction that cancels the task,
so a heartbeat renewed meanwhile keeps it. The reason goes into the task's log.

When a run is left with no open task with a fresh heartbeat, the leases it holds are freed too,
so the next run need not wait for the lease's ttl. A live run that was only between two steps
re-takes its lease with its token at its next heartbeat.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mail_pipeline.errors import InvalidTransitionError
from mail_pipeline.storage.store import MailStore


@dataclass(frozen=True)
class CleanupReport:
    """What a cleanup pass did.

    ``cancelled``: (task id, reason) of each cancelled task; ``kept``: open tasks left open;
    ``released_runs``: the runs whose leases were freed.
    """

    cancelled: list[tuple[str, str]] = field(default_factory=list)
    kept: int = 0
    released_runs: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many tasks were cancelled."""
        return len(self.cancelled)


def cleanup_stale_tasks(store: MailStore) -> CleanupReport:
    """Cancel the open tasks whose heartbeat is older than their timeout; free dead runs' leases.

    Returns:
        The tasks cancelled, with reasons, how many open tasks were kept, and the runs whose
        leases were released.

    Raises:
        SQLAlchemyError: the store is unreachable (what was cancelled stays cancelled).
    """
    now = store.clock()
    cancelled: list[tuple[str, str]] = []
    kept = 0
    touched_runs: set[str] = set()
    for task in store.tasks.open_tasks():
        if not task.is_stale(now):
            kept += 1
            continue
        age = task.heartbeat_age(now).total_seconds()
        reason = f"no heartbeat for {age:.0f} s (timeout {task.timeout_seconds} s)"
        if store.tasks.cancel_if_stale(task.task_id, f"stale task cleanup: {reason}") is None:
            kept += 1  # renewed or closed by its own run meanwhile
            continue
        cancelled.append((task.task_id, reason))
        if task.run_id is not None:
            touched_runs.add(task.run_id)
    released: list[str] = []
    if touched_runs:
        later = store.clock()
        alive = {t.run_id for t in store.tasks.open_tasks() if not t.is_stale(later)}
        for run_id in sorted(touched_runs - alive):
            if store.locks.release_for_run(None, run_id):
                released.append(run_id)
    return CleanupReport(cancelled, kept, released)


def close_tasks_of_run(
    store: MailStore, run_id: str, *, failed: bool, reason: str, lock_name: str | None = None
) -> list[str]:
    """Close every open task of Dagster run ``run_id`` and free its lease.

    For a run-status sensor: a run that FAILED leaves its open tasks FAILED, a CANCELLED run
    leaves them CANCELLED (a PENDING task cannot fail, so it is cancelled either way). When
    ``lock_name`` is given, the lease held for that run is released.

    Returns:
        The ids of the tasks closed.
    """
    closed: list[str] = []
    for task in store.tasks.recent(run_id=run_id, limit=10_000):
        if task.status.is_final:
            continue
        try:
            if failed and task.status.value == "RUNNING":
                store.tasks.mark_failed(task.task_id, f"run failed: {reason}")
            else:
                store.tasks.mark_cancelled(task.task_id, f"run ended: {reason}")
        except InvalidTransitionError:
            continue
        closed.append(task.task_id)
    if lock_name is not None:
        store.locks.release_for_run(lock_name, run_id)
    return closed
