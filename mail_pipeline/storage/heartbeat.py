"""The heartbeat of a live run: keeps its open EmailTask (and its lease) from going stale.

Stale-task cleanup (:mod:`mail_pipeline.maintenance.stale_tasks`) closes a task whose heartbeat is
older
than its ``timeout_seconds``. Whoever works on a task therefore wraps the work in a
:class:`TaskHeartbeat`::

    with TaskHeartbeat(store, task_id, lease=grant, run_id=run_id) as beat:
        result = fetcher.fetch_user(user, task_id=task_id)
    if beat.task_closed: ...   # closed under us (cleanup, a sensor, an operator)

Entering beats once (renewing the lease, or re-taking it with the same token in a re-executed
run); a daemon thread then beats every ``interval`` seconds until the block ends. The thread
beats even while the work is blocked in a socket read (an IMAP server that does not answer),
so only a process that is gone (``kill -9``, a lost host) stops beating. The state (task
closed, lease lost, last error) is held by the object, not by the module.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from mail_pipeline.errors import LeaseLostError
from mail_pipeline.storage.store import LockGrant, MailStore

log = logging.getLogger(__name__)

#: A heartbeat is renewed this many times per timeout (task timeout or lease ttl, the shorter).
BEATS_PER_TIMEOUT = 5


class TaskHeartbeat:
    """Renews an open task's heartbeat, and optionally a lease, while a block of work runs."""

    def __init__(
        self,
        store: MailStore,
        task_id: str,
        *,
        lease: LockGrant | None = None,
        run_id: str | None = None,
        interval: float | None = None,
    ) -> None:
        """Prepare a heartbeat; nothing happens until it is entered.

        ``interval`` defaults to the shorter of the task's ``timeout_seconds`` and the lease's
        ttl, divided by :data:`BEATS_PER_TIMEOUT`. ``run_id`` is recorded on the lease.

        Raises:
            ValueError: a non-positive ``interval``.
        """
        if interval is not None and not interval > 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self.store = store
        self.task_id = task_id
        self.lease = lease
        self.run_id = run_id
        self.interval = interval
        #: True once a beat found the task closed (it is not renewed any more).
        self.task_closed = False
        #: True once a beat found the lease held by another owner.
        self.lease_lost = False
        #: The last error of a background beat ("" if none), e.g. the database was down.
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        """Renew the task's heartbeat (while it is open) and the lease, once, now.

        Raises:
            NotFoundError: the task does not exist.
            SQLAlchemyError: the store is unreachable.
        """
        if not self.task_closed and not self.store.tasks.heartbeat(self.task_id):
            self.task_closed = True
            log.warning("task %s was closed while its run still works on it", self.task_id)
        if self.lease is not None and not self.store.locks.ensure(
            self.lease.name, self.lease.token, self.lease.ttl_seconds, run_id=self.run_id
        ):
            if not self.lease_lost:
                log.warning("lost the %s lease to another owner", self.lease.name)
            self.lease_lost = True

    def __enter__(self) -> TaskHeartbeat:
        """Start: see :meth:`start`."""
        return self.start()

    def start(self) -> TaskHeartbeat:
        """Beat once, then start beating in the background; return self.

        Raises:
            LeaseLostError: another owner holds the live lease (nothing is started).
            NotFoundError, SQLAlchemyError: as :meth:`beat`.
        """
        self.beat()
        if self.lease_lost:
            assert self.lease is not None
            raise LeaseLostError(f"lost the {self.lease.name} lease to another run")
        if self.interval is None:
            timeouts = [self.store.tasks.get(self.task_id).timeout_seconds]
            if self.lease is not None:
                timeouts.append(self.lease.ttl_seconds)
            self.interval = min(timeouts) / BEATS_PER_TIMEOUT
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{self.task_id[:8]}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop: see :meth:`stop`."""
        self.stop()

    def stop(self) -> None:
        """Stop the background beats (waits for a beat under way to end)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        assert self.interval is not None
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:  # the next beat tries again; the work goes on
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("heartbeat of task %s failed: %s", self.task_id, self.last_error)
