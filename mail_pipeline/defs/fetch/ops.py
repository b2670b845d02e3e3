"""The ops of ``email_fetch_job`` that span both branches: the lock, the cleanup, the release.

Failure model (what an operator sees):

* a mailbox that fails (wrong password, unreachable server, TLS refused) or a message that
  cannot be parsed harms only itself: it is recorded in the IMAP EmailTask (its
  ``error_message`` names it), in the op's metadata and in the ``last_fetch_ok`` check of its
  partition of the ``mailbox`` asset, and the other mailboxes, the spool branch and
  ``release_fetch_lock`` go on. Then the run's last step, :func:`report_failed_mailboxes`,
  fails the run (red in the Runs list), after every mailbox was tried, the task closed and the
  lease released; it has no retry policy, so nothing fetches the healthy mailboxes again.
  Re-executing it from failure asks the store again: it passes once the failed mailboxes have
  been fetched since (e.g. by a backfill of their failed partitions of ``fetched_mail``,
  :mod:`mail_pipeline.defs.fetch.assets`);
* transient IMAP errors (connection refused, dropped, timed out) are retried by the op's
  :data:`~mail_pipeline.defs.imap.ops.IMAP_RETRY_POLICY` with exponential backoff;
  authentication and configuration errors are never retried;
* an error of a whole branch (the database is down, the spool is unreadable) fails that op:
  its EmailTask is marked FAILED, the run fails, and the run-status sensor frees the fetch
  lease. Re-executing the run from failure re-runs just that branch; the store's dedup and
  the lease re-take by token make that safe;
* while an op works on an EmailTask it keeps the task's heartbeat and the fetch lease fresh
  (:class:`~mail_pipeline.storage.heartbeat.TaskHeartbeat`), so stale-task cleanup never closes
  the task of a live run; a task closed under a live op anyway (an operator, a sensor) is
  recorded in the op's log and metadata, and the op still finishes and the lease is released.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field

import dagster as dg

from mail_pipeline.defs.imap.health import health_metadata
from mail_pipeline.defs.maintenance.assets import materialize_mail_metrics
from mail_pipeline.defs.resources import FETCH_LOCK, FetchSettingsResource, StoreResource
from mail_pipeline.defs.tags import BACKFILL_TAG
from mail_pipeline.intake.imap.run import still_failing
from mail_pipeline.maintenance.metrics import SpoolMetrics
from mail_pipeline.maintenance.stale_tasks import cleanup_stale_tasks
from mail_pipeline.storage.fetch_lease import take_fetch_lease
from mail_pipeline.storage.store import LockGrant, TaskCounters


@dataclass(frozen=True)
class BranchSummary:
    """What a branch (IMAP or spool) did, for the release op and the UI."""

    source: str
    task_id: str
    counters: TaskCounters = field(default_factory=TaskCounters)
    failed_mailboxes: tuple[str, ...] = field(default=())
    #: the spool as the spool branch left it (for the mail_metrics asset)
    spool_status: SpoolMetrics | None = None
    #: what failed, as the task's ``error_message`` says it ("" when nothing failed)
    problem: str = ""


@dg.op(out={"lock": dg.Out(LockGrant, is_required=False)})
def acquire_fetch_lock(
    context: dg.OpExecutionContext, store: StoreResource, fetch_settings: FetchSettingsResource
) -> Iterator[dg.Output[LockGrant]]:
    """Take the fetch lease. When another run holds it, record SKIPPED tasks and stop here.

    A backfill's run (an operator asked for it) first waits up to one lease lifetime for the
    lease; a scheduled run does not (the next tick fetches).
    """
    backfill = BACKFILL_TAG in context.run_tags
    lease = take_fetch_lease(
        store.get(),
        FETCH_LOCK,
        fetch_settings.lock_ttl_seconds,
        context.run_id,
        wait_seconds=fetch_settings.lock_ttl_seconds if backfill else 0,
    )
    if lease.grant is None:
        context.log.info(f"skipping this fetch: {lease.skipped_because}")
        return
    yield dg.Output(lease.grant, "lock", metadata={"lease_seconds": lease.grant.ttl_seconds})


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
    context.add_output_metadata(
        {
            "cancelled": report.count,
            "kept_open": report.kept,
            "leases_released": len(report.released_runs),
        }
    )
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
    context.add_output_metadata(
        {
            "released": released,
            "messages_saved": total.saved,
            "duplicates": total.duplicate,
            "failed": total.failed,
            "failed_mailboxes": ", ".join(imap.failed_mailboxes) or "none",
        }
    )
    materialize_mail_metrics(context, store.get(), spool_status=spool.spool_status)


#: The columns of the failed mailboxes' table in the verdict's failure metadata.
FAILED_MAILBOX_COLUMNS = ("user", "status", "last_error", "failing_since", "last_success")


@dg.op(ins={"after": dg.In(dg.Nothing)}, out=dg.Out(dg.Nothing, is_required=False))
def report_failed_mailboxes(
    context: dg.OpExecutionContext, store: StoreResource, imap: BranchSummary
) -> Iterator[dg.Output[None]]:
    """Fail the run when mailboxes failed in it and are still failing (see the module doc).

    Runs after ``release_fetch_lock``: every mailbox was tried, the IMAP task closed and the
    lease released before the run is marked failed.

    Its output is the ``fetched_mail`` asset of the run's partitions, and it is never yielded: the
    step that fetched a mailbox logs that partition's materialization
    (:mod:`~mail_pipeline.defs.imap.health`). A partition the run planned but did not
    materialize, in a run that failed, is what Dagster shows as a failed partition and what
    the backfill dialog offers as "failed".

    Raises:
        dagster.Failure: (never retried) naming the failing mailboxes and their errors.
    """
    yield from ()
    if not imap.failed_mailboxes:
        return
    failing = still_failing(store.get(), imap.failed_mailboxes)
    if not failing:
        context.log.info(
            f"the mailboxes that failed in this run have been fetched since: "
            f"{', '.join(imap.failed_mailboxes)}"
        )
        return
    names = [state.username for state in failing]
    rows = [{"user": state.username, **health_metadata(state)} for state in failing]
    still = (
        imap.problem
        if len(failing) == len(imap.failed_mailboxes) and imap.problem
        else f"{len(failing)} mailbox(es) of this run still failing: "
        + ", ".join(f"{r['user']} ({r['last_error']})" for r in rows)
    )
    raise dg.Failure(
        description=(
            f"{still}. Every other mailbox was fetched. Fix the cause (`mail-pipeline imap "
            f"set USER ...`, then `mail-pipeline imap resume USER` if paused) and backfill "
            f"the failed partitions of fetched_mail: {', '.join(names)}."
        ),
        metadata={
            "failed_mailboxes": dg.MetadataValue.table(
                records=[
                    dg.TableRecord({k: str(row[k]) for k in FAILED_MAILBOX_COLUMNS}) for row in rows
                ],
                schema=dg.TableSchema(
                    columns=[dg.TableColumn(k, "string") for k in FAILED_MAILBOX_COLUMNS]
                ),
            ),
            "backfill_partitions": ", ".join(names),
        },
        allow_retries=False,
    )
