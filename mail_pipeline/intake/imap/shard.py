"""Fetch a shard of mailboxes at once: a bounded thread pool and a cap per IMAP host.

A fetch run splits its mailboxes into shards
(:meth:`~mail_pipeline.intake.imap.run.FetchPlan.shards`); each shard is one Dagster step that
calls :func:`fetch_shard` once. Inside, every mailbox is fetched by
:meth:`~mail_pipeline.intake.imap.fetcher.MailboxFetcher.fetch_user` exactly as a lone mailbox
is: its cursor committed with its messages, its own outcome recorded with the circuit breaker,
post-actions after the commit. What the shard adds:

* **Threads, not asyncio.** The whole fetch path (imapclient, ``ssl``, SQLAlchemy, flanker) is
  blocking code; an idle mailbox spends almost all of its time waiting on the network, where a
  thread releases the GIL. A pool of ``workers`` threads overlaps those waits without a second
  IMAP stack. CPU-bound work (parsing) still shares one core per process: past one core, run
  more shards in parallel on the multiprocess or Celery executor.
* **A cap per host.** At most ``per_host`` connections are open to one IMAP host name at a time
  (providers limit simultaneous connections per client address); a mailbox waiting for its
  host's slot does not hold a slot of another host.
* **Retries inside the shard, for quick transient errors only.** A refused or dropped
  connection is tried again after ``retry_delay`` seconds, doubling, up to ``max_retries``
  times. A *timeout* is not retried in the same tick: the server already cost one whole timeout
  and another try would hold the shard back by another; the next tick tries it again.
  Authentication, TLS, protocol and configuration errors are never retried.
* **One heartbeat per shard** keeps the IMAP task and the fetch lease fresh for all its
  mailboxes.
* **A fault of the environment** (the store is down, the attachment disk is full) raised while
  fetching one mailbox stops nothing else: the other mailboxes finish, then
  :class:`ShardEnvironmentError` is raised so that the step fails and is retried as a whole
  (re-fetching is safe: cursors only move with committed messages).

No Dagster imports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mail_pipeline.errors import EnvironmentFault
from mail_pipeline.intake.imap.circuit import MailboxCircuitBreaker
from mail_pipeline.intake.imap.fetcher import MailboxFetcher
from mail_pipeline.intake.imap.results import MailboxOutcome, MailboxResult
from mail_pipeline.storage.heartbeat import TaskHeartbeat
from mail_pipeline.storage.store import LockGrant, MailStore, TaskCounters

__all__ = [
    "DEFAULT_CONNECTIONS_PER_HOST",
    "DEFAULT_FETCH_WORKERS",
    "DEFAULT_SHARD_SIZE",
    "HostGate",
    "MailboxShard",
    "ShardEnvironmentError",
    "ShardLimits",
    "ShardMailbox",
    "ShardRun",
    "fetch_shard",
]

#: Threads per shard step: enough to hide ~100 ms round trips for an idle mailbox each.
DEFAULT_FETCH_WORKERS = 32
#: Simultaneous connections to one IMAP host name (Dovecot's and most providers' limits are per
#: account; this bounds what one client address opens to a server).
DEFAULT_CONNECTIONS_PER_HOST = 32
#: Mailboxes per shard step (see the README's benchmark: steps cost CPU, shards amortise it).
DEFAULT_SHARD_SIZE = 500


class ShardEnvironmentError(EnvironmentFault):
    """Fetching some mailboxes of a shard hit a fault of the environment (store, disk).

    ``causes`` holds (user name, exception) for each; the other mailboxes were fetched and
    recorded.
    """

    def __init__(self, causes: list[tuple[str, BaseException]]) -> None:
        self.causes = causes
        first_user, first = causes[0]
        super().__init__(
            f"{len(causes)} mailbox(es) stopped by a fault of the environment, first "
            f"{first_user}: {type(first).__name__}: {first}"
        )


@dataclass(frozen=True)
class ShardLimits:
    """How a shard fetches: threads, connections per host, retries of quick transient errors.

    Raises:
        ValueError: (on creation) a count < 1 (``max_retries`` < 0) or a negative delay.
    """

    workers: int = DEFAULT_FETCH_WORKERS
    per_host: int = DEFAULT_CONNECTIONS_PER_HOST
    max_retries: int = 2
    retry_delay: float = 2.0

    def __post_init__(self) -> None:
        if self.workers < 1 or self.per_host < 1:
            raise ValueError(
                f"workers and per_host must be >= 1, got {self.workers} and {self.per_host}"
            )
        if self.max_retries < 0 or self.retry_delay < 0:
            raise ValueError("max_retries and retry_delay must not be negative")


@dataclass(frozen=True)
class ShardMailbox:
    """One mailbox of a shard: its user and the IMAP host it is fetched from."""

    user_id: int
    username: str
    host: str


@dataclass(frozen=True)
class MailboxShard:
    """A slice of a fetch run's mailboxes, fetched by one step under the run's IMAP task."""

    task_id: str
    lock: LockGrant
    index: int
    mailboxes: tuple[ShardMailbox, ...]

    @property
    def key(self) -> str:
        """The shard's dynamic-output key: ``shard_0003``."""
        return f"shard_{self.index:04d}"


class HostGate:
    """At most ``per_host`` holders of a slot per host name at once (thread-safe)."""

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._lock = threading.Lock()
        self._gates: dict[str, threading.BoundedSemaphore] = {}

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        """Hold one of ``host``'s slots for the block (waits while all are taken)."""
        with self._lock:
            gate = self._gates.setdefault(host, threading.BoundedSemaphore(self.per_host))
        with gate:
            yield


@dataclass(frozen=True)
class ShardRun:
    """What a shard did: one final :class:`MailboxOutcome` per mailbox, in the shard's order."""

    key: str
    runs: tuple[MailboxOutcome, ...]
    seconds: float
    task_closed: bool
    lease_lost: bool

    @property
    def results(self) -> list[MailboxResult]:
        """The mailbox results, in the shard's order."""
        return [r.result for r in self.runs]

    @property
    def errors(self) -> tuple[str, ...]:
        """The error lines of every mailbox."""
        return tuple(line for r in self.runs for line in r.errors)

    @property
    def warnings(self) -> tuple[str, ...]:
        """The warning lines: the task closed or the lease lost under the shard."""
        lines = []
        if self.task_closed:
            lines.append("the IMAP task was closed while this shard worked on it")
        if self.lease_lost:
            lines.append("the fetch lease was taken by another run during this shard")
        return tuple(lines)

    def metadata(self) -> dict[str, Any]:
        """Return the shard's totals and ``mailboxes``: one row per mailbox (see
        :func:`~mail_pipeline.intake.imap.results.mailbox_metadata`, plus ``attempts``)."""
        total = sum((r.counters for r in self.results), TaskCounters())
        failed = [r.username for r in self.results if not r.ok]
        return {
            "shard": self.key,
            "mailboxes": len(self.runs),
            "failed_mailboxes": len(failed),
            "failed": ", ".join(failed) or "none",
            "fetched": total.fetched,
            "messages_saved": total.saved,
            "duplicates": total.duplicate,
            "failures": total.failed,
            "seconds": round(self.seconds, 3),
            "slowest_mailbox_seconds": round(max((r.seconds for r in self.results), default=0), 3),
            "task_closed_under_run": self.task_closed,
            "lease_lost": self.lease_lost,
            "mailbox_rows": [r.metadata() for r in self.runs],
        }


def fetch_shard(
    store: MailStore,
    fetcher: MailboxFetcher,
    breaker: MailboxCircuitBreaker,
    shard: MailboxShard,
    *,
    run_id: str,
    limits: ShardLimits | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ShardRun:
    """Fetch every mailbox of ``shard`` concurrently (see the module docstring) and record
    each final outcome with ``breaker``.

    Returns:
        The shard's run: a failed mailbox is a result (its ``errors`` name it), not an
        exception.

    Raises:
        LeaseLostError: another run holds the fetch lease (nothing was fetched).
        ShardEnvironmentError: a fault of the environment stopped one or more mailboxes (the
            others were fetched and recorded).
    """
    limits = limits or ShardLimits()
    gate = HostGate(limits.per_host)
    started = time.monotonic()

    def one(mailbox: ShardMailbox) -> MailboxOutcome | BaseException:
        try:
            return _fetch_one(fetcher, breaker, gate, shard.task_id, mailbox, limits, sleep, run_id)
        except Exception as exc:  # an environment fault or a bug: this mailbox only
            return exc

    with TaskHeartbeat(store, shard.task_id, lease=shard.lock, run_id=run_id) as beat:
        workers = max(1, min(limits.workers, len(shard.mailboxes)))
        with ThreadPoolExecutor(workers, thread_name_prefix=f"imap-{shard.key}") as pool:
            outcomes = list(pool.map(one, shard.mailboxes))
    runs = [o for o in outcomes if isinstance(o, MailboxOutcome)]
    causes = [
        (m.username, o)
        for m, o in zip(shard.mailboxes, outcomes, strict=True)
        if isinstance(o, BaseException)
    ]
    if causes:
        raise ShardEnvironmentError(causes)
    return ShardRun(
        shard.key,
        tuple(runs),
        time.monotonic() - started,
        beat.task_closed,
        beat.lease_lost,
    )


def _fetch_one(
    fetcher: MailboxFetcher,
    breaker: MailboxCircuitBreaker,
    gate: HostGate,
    task_id: str,
    mailbox: ShardMailbox,
    limits: ShardLimits,
    sleep: Callable[[float], None],
    run_id: str,
) -> MailboxOutcome:
    """Fetch one mailbox, retrying quick transient errors; record the final outcome."""
    attempt = 0
    while True:
        with gate.slot(mailbox.host):
            result = fetcher.fetch_user(mailbox.user_id, task_id=task_id)
        if not result.transient or result.timed_out or attempt >= limits.max_retries:
            break
        sleep(limits.retry_delay * 2**attempt)  # outside the host's slot
        attempt += 1
    errors = [] if result.ok else [f"{mailbox.username}: {result.error_kind.value}: {result.error}"]
    decision = breaker.record(result, run_id=run_id)
    if decision is not None and decision.just_paused:
        errors.append(decision.log_line())
    return MailboxOutcome(result, False, tuple(errors), (), {"attempts": attempt + 1})
