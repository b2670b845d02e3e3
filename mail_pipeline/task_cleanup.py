"""Stale-task cleanup: the seed's ``cleanup_stale_tasks`` and ``startup_cleanup``, done right.

The seed cancelled EVERY PENDING/RUNNING task, including the fresh ones of a run still working.
Here a task is cancelled only when its work can no longer finish:

* its Dagster run is known and no longer alive (failed, cancelled, finished, or gone), or
* it has run past its ``timeout_seconds`` and no live run owns it (a task without a run id,
  made by the CLI, is judged by its timeout alone).

A task of a live run is never touched. The reason goes into the task's ``details`` log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mail_pipeline.errors import InvalidTransitionError
from mail_pipeline.store import MailStore

RunAliveCheck = Callable[[str], bool]


@dataclass(frozen=True)
class CleanupReport:
    """What a cleanup pass did: (task id, reason) of each cancelled task, and what it kept."""

    cancelled: list[tuple[str, str]] = field(default_factory=list)
    kept: int = 0

    @property
    def count(self) -> int:
        """How many tasks were cancelled."""
        return len(self.cancelled)


def cleanup_stale_tasks(
    store: MailStore,
    *,
    is_run_alive: RunAliveCheck | None = None,
    current_run_id: str | None = None,
) -> CleanupReport:
    """Cancel the PENDING/RUNNING tasks whose work can no longer finish.

    Args:
        is_run_alive: answers whether a Dagster run id is still queued or running; None when
            no Dagster instance is at hand (then only timeouts count).
        current_run_id: the run doing the cleanup; its own tasks are never touched.

    Returns:
        The tasks cancelled, with reasons, and how many open tasks were kept.
    """
    now = store.clock()
    cancelled: list[tuple[str, str]] = []
    kept = 0
    for task in store.tasks.open_tasks():
        if task.run_id is not None and task.run_id == current_run_id:
            kept += 1
            continue
        reason = None
        run_known = task.run_id is not None and is_run_alive is not None
        if run_known and not is_run_alive(task.run_id):  # type: ignore[misc, arg-type]
            reason = f"its Dagster run {task.run_id} is no longer alive"
        elif not run_known and task.is_timeout(now):
            reason = f"timed out: RUNNING longer than {task.timeout_seconds} s"
        if reason is None:
            kept += 1
            continue
        try:
            store.tasks.mark_cancelled(task.task_id, f"stale task cleanup: {reason}")
        except InvalidTransitionError:
            kept += 1  # closed meanwhile by its own run: nothing to do
            continue
        cancelled.append((task.task_id, reason))
    return CleanupReport(cancelled, kept)


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
