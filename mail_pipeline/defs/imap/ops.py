"""Ops of the fetch jobs. Each one calls a core service and reports what it did as metadata.

Failure model (what an operator sees):

* a mailbox that fails (wrong password, unreachable server, TLS refused) or a message that
  cannot be parsed harms only itself: it is recorded in the IMAP EmailTask and in the op's
  metadata, and the other mailboxes, the spool branch and ``release_fetch_lock`` go on;
* transient IMAP errors (connection refused, dropped, timed out) are retried by the op's
  :data:`IMAP_RETRY_POLICY` with exponential backoff; authentication and configuration errors
  are never retried;
* an error of a whole branch (the database is down, the spool is unreadable) fails that op:
  its EmailTask is marked FAILED, the run fails, and the run-status sensor frees the fetch
  lease. Re-executing the run from failure re-runs just that branch; the store's dedup and
  the lease re-take by token make that safe;
* while an op works on an EmailTask it keeps the task's heartbeat and the fetch lease fresh
  (:class:`~mail_pipeline.storage.heartbeat.TaskHeartbeat`), so stale-task cleanup never closes
  the task of a live run; a task closed under a live op anyway (an operator, a sensor) is
  recorded in the op's log and metadata, and the op still finishes and the lease is released.
"""


import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from mail_pipeline.defs.maintenance import materialize_mail_metrics
from mail_pipeline.defs.resources import (
    FETCH_LOCK,
    AttachmentsResource,
    FetchSettingsResource,
    ImapResource,
    SpoolResource,
    StoreResource,
    save_service,
)
from mail_pipeline.errors import LeaseLostError
from mail_pipeline.intake.imap.circuit import MailboxCircuitBreaker
from mail_pipeline.intake.imap.fetcher import MailboxFetcher, MailboxResult
from mail_pipeline.intake.spool.ingest import IngestResult, SpoolIngestService
from mail_pipeline.maintenance.metrics import SpoolMetrics, spool_metrics
from mail_pipeline.maintenance.stale_tasks import cleanup_stale_tasks
from mail_pipeline.storage.heartbeat import TaskHeartbeat
from mail_pipeline.storage.store import EmailSource, LockGrant, TaskCounters, TaskFinish, TaskStatus

IMAP_RETRY_POLICY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL)


@dataclass(frozen=True)
class MailboxWork:
    """One mailbox to fetch, for the mapped op."""

    task_id: str
    user_id: int
    username: str
    lock: LockGrant


@dataclass(frozen=True)
class BranchSummary:
    """What a branch (IMAP or spool) did, for the release op and the UI."""

    source: str
    task_id: str
    counters: TaskCounters = field(default_factory=TaskCounters)
    failed_mailboxes: tuple[str, ...] = field(default=())
    #: the spool as the spool branch left it (for the mail_metrics asset)
    spool_status: SpoolMetrics | None = None


def mapping_key(username: str, user_id: int) -> str:
    """Return a readable, unique dynamic-output key for a user (``[A-Za-z0-9_]`` only)."""
    return f"{re.sub(r'[^A-Za-z0-9_]', '_', username)[:60]}_{user_id}"


def _closed_under_run(context: dg.OpExecutionContext, done: TaskFinish) -> dict[str, Any]:
    """Log a task that was closed under this run; return the metadata that records it."""
    if done.already_closed:
        context.log.warning(f"{done.note()} when this op finished it: the work was done and "
                            "is recorded in the task's log")
    return {"task_status": done.task.status.value, "task_closed_under_run": done.already_closed}


def _heartbeat_metadata(context: dg.OpExecutionContext, beat: TaskHeartbeat) -> dict[str, Any]:
    """Log what the heartbeat saw (task closed, lease lost); return it as metadata."""
    if beat.task_closed:
        context.log.warning(f"task {beat.task_id} was closed while this op worked on it")
    if beat.lease_lost:
        context.log.warning("the fetch lease was taken by another run during this op")
    return {"task_closed_under_run": beat.task_closed, "lease_lost": beat.lease_lost}


# --- lock and cleanup ----------------------------------------------------------------------


@dg.op(out={"lock": dg.Out(LockGrant, is_required=False)})
def acquire_fetch_lock(
    context: dg.OpExecutionContext, store: StoreResource, fetch_settings: FetchSettingsResource
) -> Iterator[dg.Output[LockGrant]]:
    """Take the fetch lease. When another run holds it, record SKIPPED tasks and stop here."""
    mail = store.get()
    ttl = fetch_settings.lock_ttl_seconds
    token = mail.locks.acquire(FETCH_LOCK, ttl, run_id=context.run_id,
                               owner_info=f"dagster run {context.run_id}")
    if token is None:
        holder = mail.locks.live(FETCH_LOCK)
        reason = (f"fetch lock held by run {holder.run_id} until {holder.expires_at:%H:%M:%S}"
                  if holder else "fetch lock held by another run")
        for source in EmailSource:
            task = mail.tasks.create(source, run_id=context.run_id, message="fetch scheduled")
            mail.tasks.mark_skipped(task.task_id, reason)
        context.log.info(f"skipping this fetch: {reason}")
        return
    yield dg.Output(LockGrant(FETCH_LOCK, token, ttl), "lock",
                    metadata={"lease_seconds": ttl})


@dg.op(name="cleanup_stale_tasks")
def cleanup_stale_tasks_op(
    context: dg.OpExecutionContext, store: StoreResource, lock: LockGrant
) -> LockGrant:
    """Cancel the tasks whose heartbeat is older than their timeout (their run is dead).

    Tasks whose run still renews their heartbeat are kept, whatever Dagster says of the run.
    """
    report = cleanup_stale_tasks(store.get())
    for task_id, reason in report.cancelled:
        context.log.warning(f"cancelled stale task {task_id}: {reason}")
    for run_id in report.released_runs:
        context.log.warning(f"released the lease(s) of dead run {run_id}")
    context.add_output_metadata({"cancelled": report.count, "kept_open": report.kept,
                                 "leases_released": len(report.released_runs)})
    return lock


@dg.op
def release_fetch_lock(
    context: dg.OpExecutionContext,
    store: StoreResource,
    lock: LockGrant,
    imap: BranchSummary,
    spool: BranchSummary,
) -> None:
    """Release the fetch lease (only the holder's token can) once both branches are done.

    Then record the ``mail_metrics`` asset (its numeric metadata is what the UI plots).
    """
    released = store.get().locks.release(lock.name, lock.token)
    if not released:
        context.log.warning("the fetch lease was no longer ours (expired and taken over?)")
    total = imap.counters + spool.counters
    context.add_output_metadata({
        "released": released,
        "messages_saved": total.saved,
        "duplicates": total.duplicate,
        "failed": total.failed,
        "failed_mailboxes": ", ".join(imap.failed_mailboxes) or "none",
    })
    materialize_mail_metrics(context, store.get(), spool_status=spool.spool_status)


# --- IMAP branch ---------------------------------------------------------------------------


@dg.op(out={"mailboxes": dg.DynamicOut(MailboxWork), "task": dg.Out(str)})
def plan_imap_fetch(
    context: dg.OpExecutionContext,
    store: StoreResource,
    imap: ImapResource,
    fetch_settings: FetchSettingsResource,
    lock: LockGrant,
) -> Iterator[dg.Output[str] | dg.DynamicOutput[MailboxWork]]:
    """Open the IMAP EmailTask and yield one mailbox per active user with a valid config."""
    mail = store.get()
    task = mail.tasks.create(EmailSource.IMAP, run_id=context.run_id, status=TaskStatus.RUNNING,
                             timeout_seconds=fetch_settings.task_timeout_seconds,
                             message="IMAP fetch started")
    users = imap.config_manager(mail).imap_users()
    paused = MailboxCircuitBreaker(mail).paused()
    valid = [(uid, name) for uid, name, ok, _ in users if ok and uid not in paused]
    for uid, name, ok, problem in users:
        if not ok:
            mail.tasks.add_execution_log(task.task_id, "plan", f"{name}: invalid IMAP config: "
                                         f"{problem}", "WARNING")
            context.log.warning(f"{name}: invalid IMAP config: {problem}")
        elif uid in paused:
            line = (f"{name}: mailbox paused since {paused[uid].paused_at:%Y-%m-%d %H:%M} "
                    f"({paused[uid].paused_reason}); skipped until "
                    f"`mail-pipeline imap resume {name}`")
            mail.tasks.add_execution_log(task.task_id, "plan", line, "WARNING")
            context.log.warning(line)
    invalid = sum(1 for _u, _n, ok, _p in users if not ok)
    yield dg.Output(task.task_id, "task",
                    metadata={"users": len(valid), "invalid_configs": invalid,
                              "paused_mailboxes": len(users) - len(valid) - invalid})
    for user_id, name in valid:
        yield dg.DynamicOutput(MailboxWork(task.task_id, user_id, name, lock),
                               output_name="mailboxes", mapping_key=mapping_key(name, user_id))


def _fetch(
    context: dg.OpExecutionContext,
    store: StoreResource,
    attachments: AttachmentsResource,
    imap: ImapResource,
    user: int | str,
    task_id: str,
    lock: LockGrant | None = None,
) -> tuple[MailboxResult, TaskHeartbeat]:
    """Fetch one mailbox while keeping the task's heartbeat (and ``lock``) fresh.

    Raises:
        dg.Failure: another run holds the lease (not retried).
    """
    mail = store.get()
    fetcher = MailboxFetcher(
        mail, save_service(store, attachments), imap.config_manager(mail),
        batch_size=imap.batch_size, connect_timeout=imap.connect_timeout,
        read_timeout=imap.read_timeout,
    )
    try:
        with TaskHeartbeat(mail, task_id, lease=lock, run_id=context.run_id) as beat:
            return fetcher.fetch_user(user, task_id=task_id), beat
    except LeaseLostError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc


def _mailbox_metadata(result: MailboxResult) -> dict[str, Any]:
    c = result.counters
    return {
        "user": result.username,
        "fetched": c.fetched,
        "messages_saved": c.saved,
        "duplicates": c.duplicate,
        "failures": c.failed,
        "too_large": result.too_large,
        "seconds": round(result.seconds, 3),
        "error": result.error or "none",
    }


@dg.op(retry_policy=IMAP_RETRY_POLICY)
def fetch_mailbox(
    context: dg.OpExecutionContext,
    store: StoreResource,
    attachments: AttachmentsResource,
    imap: ImapResource,
    work: MailboxWork,
) -> MailboxResult:
    """Fetch one user's mailbox. A failed mailbox is recorded, not raised (see module doc)."""
    result, beat = _fetch(context, store, attachments, imap, work.user_id, work.task_id,
                          work.lock)
    if result.transient and context.retry_number < IMAP_RETRY_POLICY.max_retries:
        raise dg.Failure(f"{work.username}: {result.error} (will retry)",
                         metadata=_mailbox_metadata(result))
    if not result.ok:
        context.log.error(f"{work.username}: {result.error_kind.value}: {result.error}")
    _record_outcome(context, imap, store, result)
    context.add_output_metadata({**_mailbox_metadata(result),
                                 **_heartbeat_metadata(context, beat)})
    return result


def _record_outcome(
    context: dg.OpExecutionContext, imap: ImapResource, store: StoreResource,
    result: MailboxResult,
) -> None:
    """Record a mailbox's final outcome with the circuit breaker; log a pause loudly."""
    decision = imap.circuit_breaker(store.get()).record(result)
    if decision is not None and decision.just_paused:
        context.log.error(decision.log_line())


@dg.op
def close_imap_fetch(
    context: dg.OpExecutionContext,
    store: StoreResource,
    task: str,
    results: list[MailboxResult],
) -> BranchSummary:
    """Close the IMAP EmailTask with the totals (counters were added by each mailbox).

    A task closed under the run (e.g. by stale-task cleanup) keeps its state; the op records
    that in its log and metadata and returns as usual, so the lease is still released.
    """
    mail = store.get()
    failed = tuple(r.username for r in results if not r.ok)
    total = sum((r.counters for r in results), TaskCounters())
    message = f"{len(results)} mailboxes, {len(failed)} failed"
    too_large = sum(r.too_large for r in results)
    if too_large:
        message += f", {too_large} message(s) over the size limit left on the server"
    if failed:
        context.log.error("IMAP fetch: {} of {} mailbox(es) failed: {}".format(
            len(failed), len(results), "; ".join(
                f"{r.username} ({r.error_kind.value}: {r.error})"[:300]
                for r in results if not r.ok)))
    if results and len(failed) == len(results):
        done = mail.tasks.finish(task, error=f"every mailbox failed: {', '.join(failed)}")
    else:
        if failed:
            mail.tasks.add_execution_log(task, "close", f"failed mailboxes: {', '.join(failed)}",
                                         "WARNING")
        done = mail.tasks.finish(task, message=message)
    context.add_output_metadata({
        **_closed_under_run(context, done),
        "mailboxes": len(results),
        "failed_mailboxes": len(failed),
        "messages_saved": total.saved,
        "duplicates": total.duplicate,
        "failures": total.failed,
        "too_large": too_large,
        "seconds": round(sum(r.seconds for r in results), 3),
    })
    return BranchSummary("imap", task, total, failed)


# --- Haraka spool branch -------------------------------------------------------------------


def _ingest(
    context: dg.OpExecutionContext,
    store: StoreResource,
    attachments: AttachmentsResource,
    spool: SpoolResource,
    lock: LockGrant | None = None,
) -> IngestResult:
    """Ingest the spool under a task of its own, keeping its heartbeat (and ``lock``) fresh.

    Raises:
        dg.Failure: another run holds the lease (not retried).
    """
    service = SpoolIngestService(
        store.get(), spool.directory, attachments.storage(), batch_size=spool.batch_size,
        max_size=spool.max_message_bytes,
    )
    started = time.monotonic()
    try:
        result = service.ingest_as_task(run_id=context.run_id, lease=lock)
    except LeaseLostError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc
    if result.task_closed:
        context.log.warning(f"{result.task_closed} when the ingest finished: the work was done "
                            "and is recorded in the task's log")
    context.add_output_metadata({
        "task_closed_under_run": bool(result.task_closed),
        "found": result.found,
        "messages_saved": result.saved,
        "duplicates": result.duplicates,
        "failed": result.failed,
        "unmatched": result.unmatched,
        "refused": result.refused,
        "recovered": result.recovered,
        "seconds": round(time.monotonic() - started, 3),
    })
    for problem in result.problems[:20]:
        context.log.warning(f"spool: {problem}")
    return result


@dg.op
def ingest_spool(
    context: dg.OpExecutionContext,
    store: StoreResource,
    attachments: AttachmentsResource,
    spool: SpoolResource,
    lock: LockGrant,
) -> BranchSummary:
    """Ingest the Haraka spool under a HARAKA_EMAIL_FETCH task of its own."""
    result = _ingest(context, store, attachments, spool, lock)
    try:
        status: SpoolMetrics | None = spool_metrics(spool.directory)
    except Exception as exc:  # only a report: the ingest itself succeeded
        context.log.warning(f"spool status not measured: {type(exc).__name__}: {exc}")
        status = None
    return BranchSummary("haraka", result.task_id or "", result.counters, spool_status=status)


@dg.op
def ingest_spool_now(
    context: dg.OpExecutionContext,
    store: StoreResource,
    attachments: AttachmentsResource,
    spool: SpoolResource,
) -> None:
    """Ingest the spool (the sensor's job: claims make it safe beside a running fetch)."""
    _ingest(context, store, attachments, spool)


# --- one mailbox, by partition ---------------------------------------------------------------


@dg.op(retry_policy=IMAP_RETRY_POLICY)
def fetch_mailbox_partition(
    context: dg.OpExecutionContext,
    store: StoreResource,
    attachments: AttachmentsResource,
    imap: ImapResource,
    fetch_settings: FetchSettingsResource,
) -> MailboxResult:
    """Fetch the mailbox named by the partition key; FAIL the run when the mailbox fails."""
    username = context.partition_key
    mail = store.get()
    user_id = mail.users.get(username).id
    paused = MailboxCircuitBreaker(mail).paused().get(user_id)
    if paused is not None:
        raise dg.Failure(f"{username}: mailbox paused ({paused.paused_reason}); run "
                         f"`mail-pipeline imap resume {username}` first", allow_retries=False)
    task = mail.tasks.create(EmailSource.IMAP, run_id=context.run_id, status=TaskStatus.RUNNING,
                             timeout_seconds=fetch_settings.task_timeout_seconds,
                             message=f"fetch of mailbox {username}")
    result, _beat = _fetch(context, store, attachments, imap, username, task.task_id)
    if result.ok or not result.transient or context.retry_number >= IMAP_RETRY_POLICY.max_retries:
        _record_outcome(context, imap, store, result)
    if not result.ok:
        done = mail.tasks.finish(task.task_id, error=f"{username}: {result.error}")
        raise dg.Failure(
            f"{username}: {result.error_kind.value}: {result.error}",
            metadata={**_mailbox_metadata(result), **_closed_under_run(context, done)},
            allow_retries=result.transient,
        )
    done = mail.tasks.finish(task.task_id)
    context.add_output_metadata({**_mailbox_metadata(result), **_closed_under_run(context, done)})
    return result
