"""The IMAP side of a fetch run: which mailboxes to fetch, one mailbox, closing the task.

The decisions the Dagster ops of :mod:`mail_pipeline.defs.imap.ops` only wire, each a
function the op calls once:

* :func:`plan_fetch` opens the IMAP EmailTask and picks the mailboxes: every active user with
  a valid IMAP config whose mailbox is not paused; the others are named in the task's log.
  :meth:`FetchPlan.shards` cuts them into the shards that
  :func:`~mail_pipeline.intake.imap.shard.fetch_shard` fetches concurrently;
* :func:`fetch_named_mailbox` fetches one mailbox named by the operator (the partitioned
  job), under a task of its own, refusing a paused mailbox, and decides with
  :func:`should_retry` whether the op retries it or records it for good with the circuit
  breaker;
* :func:`close_fetch` closes the IMAP task: FAILED when every mailbox failed, COMPLETED
  otherwise; either way a task with failed mailboxes says so in its ``error_message``
  (:func:`failure_summary`: "2 of 6 mailboxes failed: bob (auth: ...), ...").

* :func:`still_failing` says which mailboxes that failed in a run have not been fetched
  successfully since (the run's verdict, also when it is re-executed later).

Each returns what happened with the lines to log and the metadata to show. No Dagster imports.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from mail_pipeline.errors import ConfigError, NotFoundError
from mail_pipeline.intake.imap.circuit import MailboxCircuitBreaker
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.fetcher import MailboxFetcher
from mail_pipeline.intake.imap.results import MailboxOutcome, MailboxResult
from mail_pipeline.intake.imap.shard import MailboxShard, ShardMailbox
from mail_pipeline.storage.heartbeat import TaskHeartbeat
from mail_pipeline.storage.store import (
    EmailSource,
    LockGrant,
    MailboxStatus,
    MailStore,
    TaskCounters,
    TaskFinish,
    TaskStatus,
)


class MailboxPausedError(ConfigError):
    """The mailbox asked for is paused by the circuit breaker (resume it first)."""


@dataclass(frozen=True)
class FetchPlan:
    """The IMAP task of a fetch run and the mailboxes it fetches.

    ``warnings`` are the lines also written to the task's log: the users skipped and why.
    """

    task_id: str
    mailboxes: tuple[ShardMailbox, ...]
    invalid: int = 0
    paused: int = 0
    warnings: tuple[str, ...] = ()

    def shards(self, lock: LockGrant, size: int) -> list[MailboxShard]:
        """Return the mailboxes in shards of at most ``size`` (the last may be smaller), in
        plan order, each holding ``lock``.

        Raises:
            ValueError: ``size`` < 1.
        """
        if size < 1:
            raise ValueError(f"the shard size must be >= 1, got {size}")
        return [
            MailboxShard(self.task_id, lock, n, self.mailboxes[start : start + size])
            for n, start in enumerate(range(0, len(self.mailboxes), size))
        ]

    def metadata(self) -> dict[str, int]:
        """Return the counts to show: mailboxes fetched, invalid configs, paused mailboxes."""
        return {
            "users": len(self.mailboxes),
            "hosts": len({m.host for m in self.mailboxes}),
            "invalid_configs": self.invalid,
            "paused_mailboxes": self.paused,
        }


def plan_fetch(
    store: MailStore,
    configs: EmailConfigManager,
    *,
    run_id: str,
    timeout_seconds: int,
    only: Collection[str] | None = None,
) -> FetchPlan:
    """Open the run's IMAP task (RUNNING) and plan its mailboxes: all of them, or with
    ``only`` the mailboxes of those usernames (a backfill of some mailboxes).

    Returns:
        The plan: every active user (of ``only``) with a valid IMAP config whose mailbox is not
        paused, in the order of :meth:`EmailConfigManager.imap_users`. Each user with an
        invalid config or a paused mailbox, and each name of ``only`` that is no active user
        with an IMAP account, gets a WARNING line in the task's log (and in ``warnings``).
    """
    task = store.tasks.create(
        EmailSource.IMAP,
        run_id=run_id,
        status=TaskStatus.RUNNING,
        timeout_seconds=timeout_seconds,
        message="IMAP fetch started",
    )
    paused = MailboxCircuitBreaker(store).paused()
    chosen: list[ShardMailbox] = []
    warnings: list[str] = []
    invalid = skipped = 0
    wanted = None if only is None else set(only)
    for target in configs.imap_targets():
        uid, name = target.user_id, target.username
        if wanted is not None:
            if name not in wanted:
                continue
            wanted.discard(name)
        if not target.ok:
            invalid += 1
            warnings.append(f"{name}: invalid IMAP config: {target.problem}")
        elif uid in paused:
            skipped += 1
            warnings.append(
                f"{name}: mailbox paused since {paused[uid].paused_at:%Y-%m-%d %H:%M} "
                f"({paused[uid].paused_reason}); skipped until "
                f"`mail-pipeline imap resume {name}`"
            )
        else:
            chosen.append(ShardMailbox(uid, name, target.host))
    for name in sorted(wanted or ()):
        warnings.append(f"{name}: not fetched: no active user of that name has an IMAP account")
    for line in warnings:
        store.tasks.add_execution_log(task.task_id, "plan", line, "WARNING")
    return FetchPlan(task.task_id, tuple(chosen), invalid, skipped, tuple(warnings))


def should_retry(result: MailboxResult, retry_number: int, max_retries: int) -> bool:
    """Return True when ``result`` is a transient error (connection refused, dropped, timed
    out) and retry ``retry_number`` (0 for the first try) leaves retries out of
    ``max_retries``. Authentication, TLS, protocol and configuration errors: never."""
    return result.transient and retry_number < max_retries


def record_outcome(breaker: MailboxCircuitBreaker, result: MailboxResult, run_id: str) -> list[str]:
    """Record a final outcome with the circuit breaker; return the pause line, if it paused."""
    decision = breaker.record(result, run_id=run_id)
    return [decision.log_line()] if decision is not None and decision.just_paused else []


def _closed_under_run(done: TaskFinish) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Return the warning (if the task was closed under the run) and the metadata of ``done``."""
    warnings = (
        (
            (
                f"{done.note()} when this op finished it: the work was done and is recorded "
                "in the task's log"
            ),
        )
        if done.already_closed
        else ()
    )
    return warnings, {
        "task_status": done.task.status.value,
        "task_closed_under_run": done.already_closed,
    }


def fetch_named_mailbox(
    store: MailStore,
    fetcher: MailboxFetcher,
    breaker: MailboxCircuitBreaker,
    username: str,
    *,
    run_id: str,
    timeout_seconds: int,
    retry_number: int,
    max_retries: int,
) -> MailboxOutcome:
    """Fetch ``username``'s mailbox under an IMAP task of its own, then close the task
    (FAILED with the error when the mailbox failed). The outcome is recorded with ``breaker``
    unless :func:`should_retry` says it is retried.

    Returns:
        The run (``extra`` says how the task was closed).

    Raises:
        NotFoundError: no such user.
        MailboxPausedError: the mailbox is paused (no task is opened).
    """
    user_id = store.users.get(username).id
    paused = breaker.paused().get(user_id)
    if paused is not None:
        raise MailboxPausedError(
            f"{username}: mailbox paused ({paused.paused_reason}); run "
            f"`mail-pipeline imap resume {username}` first"
        )
    task = store.tasks.create(
        EmailSource.IMAP,
        run_id=run_id,
        status=TaskStatus.RUNNING,
        timeout_seconds=timeout_seconds,
        message=f"fetch of mailbox {username}",
    )
    with TaskHeartbeat(store, task.task_id, run_id=run_id):
        result = fetcher.fetch_user(username, task_id=task.task_id)
    retry = should_retry(result, retry_number, max_retries)
    errors = [] if retry else record_outcome(breaker, result, run_id)
    if result.ok:
        done = store.tasks.finish(task.task_id)
    else:
        done = store.tasks.finish(task.task_id, error=f"{username}: {result.error}")
    warnings, extra = _closed_under_run(done)
    return MailboxOutcome(result, retry, tuple(errors), warnings, extra)


#: The longest :func:`failure_summary` (``error_message`` is Text: the bound is ours, so one
#: task row stays readable in ``tasks list`` and the UI whatever the number of mailboxes).
MAX_SUMMARY_CHARS = 2000
#: Each mailbox's error is cut to this many characters in the summary.
MAX_MAILBOX_ERROR_CHARS = 160


def failure_summary(results: list[MailboxResult], limit: int = MAX_SUMMARY_CHARS) -> str:
    """Return "F of N mailboxes failed: bob (auth: ...), carol (connect: ...)" for the failed
    ``results``, in their order, at most ``limit`` characters: each error is cut to
    :data:`MAX_MAILBOX_ERROR_CHARS`, and the mailboxes that do not fit are counted
    ("... and 3 more"). Returns "" when none failed.
    """
    failed = [r for r in results if not r.ok]
    if not failed:
        return ""
    text = f"{len(failed)} of {len(results)} mailboxes failed: "
    for n, r in enumerate(failed):
        error = " ".join(r.error.split())
        if len(error) > MAX_MAILBOX_ERROR_CHARS:
            error = error[: MAX_MAILBOX_ERROR_CHARS - 3] + "..."
        sep = ", " if n else ""
        longer = f"{text}{sep}{r.username} ({r.error_kind.value or 'error'}: {error})"
        rest = len(failed) - n - 1
        if len(longer) + (len(f", ... and {rest} more") if rest else 0) > limit:
            return f"{text}{sep}... and {len(failed) - n} more"[:limit]
        text = longer
    return text


@dataclass(frozen=True)
class FetchClose:
    """How :func:`close_fetch` closed the IMAP task, and the run's IMAP totals."""

    done: TaskFinish
    mailboxes: int
    failed: tuple[str, ...]
    counters: TaskCounters
    too_large: int
    seconds: float
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: :func:`failure_summary` of the run ("" when no mailbox failed)
    summary: str = ""

    def metadata(self) -> dict[str, Any]:
        """Return the totals and the task's state, as metadata for the UI."""
        return {
            **_closed_under_run(self.done)[1],
            "mailboxes": self.mailboxes,
            "failed_mailboxes": len(self.failed),
            "messages_saved": self.counters.saved,
            "duplicates": self.counters.duplicate,
            "failures": self.counters.failed,
            "too_large": self.too_large,
            "seconds": round(self.seconds, 3),
        }


def close_fetch(store: MailStore, task_id: str, results: list[MailboxResult]) -> FetchClose:
    """Close the IMAP task of a run with the outcome of its mailbox ``results``.

    The task is FAILED when there were mailboxes and all of them failed; otherwise COMPLETED
    with a summary, the failed mailboxes named in its log. When any failed, the task's
    ``error_message`` is :func:`failure_summary` ("2 of 6 mailboxes failed: ..."). A task
    closed under the run (e.g. by stale-task cleanup) keeps its state; ``warnings`` says so.
    (The counters were added to the task by each mailbox.)

    Returns:
        What was closed and the totals; ``errors`` names the failed mailboxes and their errors.
    """
    failed = tuple(r.username for r in results if not r.ok)
    total = sum((r.counters for r in results), TaskCounters())
    too_large = sum(r.too_large for r in results)
    message = f"{len(results)} mailboxes, {len(failed)} failed"
    if too_large:
        message += f", {too_large} message(s) over the size limit left on the server"
    errors: tuple[str, ...] = ()
    if failed:
        errors = (
            "IMAP fetch: {} of {} mailbox(es) failed: {}".format(
                len(failed),
                len(results),
                "; ".join(
                    f"{r.username} ({r.error_kind.value}: {r.error})"[:300]
                    for r in results
                    if not r.ok
                ),
            ),
        )
    summary = failure_summary(results)
    if results and len(failed) == len(results):
        done = store.tasks.finish(task_id, error=summary)
    else:
        if failed:
            store.tasks.add_execution_log(
                task_id, "close", f"failed mailboxes: {', '.join(failed)}", "WARNING"
            )
        done = store.tasks.finish(task_id, message=message, problems=summary or None)
    return FetchClose(
        done,
        len(results),
        failed,
        total,
        too_large,
        sum(r.seconds for r in results),
        errors,
        _closed_under_run(done)[0],
        summary,
    )


def still_failing(store: MailStore, usernames: tuple[str, ...]) -> list[MailboxStatus]:
    """Return the state of each of ``usernames``' mailboxes that is still failing: its
    failure streak has not been ended by a successful fetch since (``failing_since`` is set;
    ``imap resume`` lifts a pause but fetches nothing, so it does not end the streak). A user
    that no longer exists or whose mailbox was never recorded is left out (nothing to fix).

    Returns:
        The failing mailboxes' states, in the order of ``usernames``.
    """
    ids: dict[str, int] = {}
    for name in usernames:
        try:
            ids[name] = store.users.get(name).id
        except NotFoundError:
            continue
    states = store.mailboxes.states(ids.values())
    return [
        states[uid]
        for uid in ids.values()
        if uid in states and states[uid].failing_since is not None
    ]
