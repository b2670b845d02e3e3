"""The IMAP ops: plan the mailboxes in shards, fetch each shard, close the IMAP task; one
partition.

Each op wires resources to one function of :mod:`mail_pipeline.intake.imap.run`, which makes
the decisions (which mailboxes, retry or record, FAILED or COMPLETED), and turns its result
into log lines and metadata. The failure model is in :mod:`mail_pipeline.defs.fetch.ops`.
"""

from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from mail_pipeline.defs.fetch.ops import BranchSummary
from mail_pipeline.defs.imap.health import log_mailbox_events
from mail_pipeline.defs.imap.partitions import run_mailboxes
from mail_pipeline.defs.resources import (
    AttachmentsResource,
    FetchSettingsResource,
    ImapResource,
    StoreResource,
    save_service,
)
from mail_pipeline.errors import LeaseLostError
from mail_pipeline.intake.imap.results import MailboxOutcome, MailboxResult
from mail_pipeline.intake.imap.run import (
    MailboxPausedError,
    close_fetch,
    fetch_named_mailbox,
    plan_fetch,
)
from mail_pipeline.intake.imap.shard import DEFAULT_SHARD_SIZE, MailboxShard, ShardRun, fetch_shard
from mail_pipeline.storage.store import LockGrant

#: The partitioned job's one mailbox: transient errors retried by Dagster (an authentication,
#: TLS or configuration failure is raised with ``allow_retries=False``).
IMAP_RETRY_POLICY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL)
#: A shard step: its mailboxes retry their own quick transient errors; the step itself is
#: retried only when a fault of the environment (store, disk) stopped it. A failed mailbox
#: never fails (so never retries) the step: it fails the run at its end, in
#: :func:`~mail_pipeline.defs.fetch.ops.report_failed_mailboxes`, which has no retry policy.
SHARD_RETRY_POLICY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL)


def _log(
    context: dg.OpExecutionContext, errors: tuple[str, ...], warnings: tuple[str, ...]
) -> None:
    for line in errors:
        context.log.error(line)
    for line in warnings:
        context.log.warning(line)


class PlanConfig(dg.Config):
    """How a fetch run cuts its mailboxes into steps."""

    shard_size: int = Field(
        default=DEFAULT_SHARD_SIZE,
        ge=1,
        description="mailboxes per fetch_mailbox_shard step (1: one step per mailbox)",
    )


@dg.op(out={"shards": dg.DynamicOut(MailboxShard), "task": dg.Out(str)})
def plan_imap_fetch(
    context: dg.OpExecutionContext,
    config: PlanConfig,
    store: StoreResource,
    imap: ImapResource,
    fetch_settings: FetchSettingsResource,
    lock: LockGrant,
) -> Iterator[dg.Output[str] | dg.DynamicOutput[MailboxShard]]:
    """Open the IMAP EmailTask and yield the mailboxes to fetch, in shards of
    ``shard_size``: every active user (of the run's partitions, in a backfill of some
    mailboxes) with a valid config whose mailbox is not paused."""
    mail = store.get()
    plan = plan_fetch(
        mail,
        imap.config_manager(mail),
        run_id=context.run_id,
        timeout_seconds=fetch_settings.task_timeout_seconds,
        only=run_mailboxes(context),
    )
    _log(context, (), plan.warnings)
    shards = plan.shards(lock, config.shard_size)
    yield dg.Output(
        plan.task_id,
        "task",
        metadata={**plan.metadata(), "shards": len(shards), "shard_size": config.shard_size},
    )
    for shard in shards:
        yield dg.DynamicOutput(shard, output_name="shards", mapping_key=shard.key)


def _mailbox_table(run: ShardRun) -> dg.TableMetadataValue:
    rows = run.metadata()["mailbox_rows"]
    return dg.MetadataValue.table(
        records=[dg.TableRecord(row) for row in rows],
        schema=dg.TableSchema(
            columns=[dg.TableColumn(name, MAILBOX_COLUMNS[name]) for name in MAILBOX_COLUMNS]
        ),
    )


#: The per-mailbox table of a shard step: column -> type (as Dagster's UI shows it).
MAILBOX_COLUMNS = {
    "user": "string",
    "fetched": "int",
    "messages_saved": "int",
    "duplicates": "int",
    "failures": "int",
    "too_large": "int",
    "seconds": "float",
    "error_kind": "string",
    "error": "string",
    "attempts": "int",
}


@dg.op(retry_policy=SHARD_RETRY_POLICY)
def fetch_mailbox_shard(
    context: dg.OpExecutionContext,
    store: StoreResource,
    attachments: AttachmentsResource,
    imap: ImapResource,
    shard: MailboxShard,
) -> list[MailboxResult]:
    """Fetch a shard's mailboxes concurrently. A failed mailbox is recorded, not raised;
    a fault of the environment fails the step, which is retried (see the module doc)."""
    mail = store.get()
    before = mail.mailboxes.states(m.user_id for m in shard.mailboxes)
    try:
        run = fetch_shard(
            mail,
            imap.fetcher(mail, save_service(store, attachments)),
            imap.circuit_breaker(mail),
            shard,
            run_id=context.run_id,
            limits=imap.shard_limits(),
        )
    except LeaseLostError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc
    _log(context, run.errors, run.warnings)
    log_mailbox_events(context, mail, run.results, before)
    metadata = {k: v for k, v in run.metadata().items() if k != "mailbox_rows"}
    context.add_output_metadata({**metadata, "mailbox_results": _mailbox_table(run)})
    return run.results


@dg.op
def close_imap_fetch(
    context: dg.OpExecutionContext,
    store: StoreResource,
    task: str,
    results: list[list[MailboxResult]],
) -> BranchSummary:
    """Close the IMAP EmailTask with the totals (counters were added by each mailbox).

    A task closed under the run (e.g. by stale-task cleanup) keeps its state; the op records
    that in its log and metadata and returns as usual, so the lease is still released.
    """
    closed = close_fetch(store.get(), task, [r for shard in results for r in shard])
    _log(context, closed.errors, closed.warnings)
    context.add_output_metadata(closed.metadata())
    return BranchSummary("imap", task, closed.counters, closed.failed, problem=closed.summary)


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
    try:
        run: MailboxOutcome = fetch_named_mailbox(
            mail,
            imap.fetcher(mail, save_service(store, attachments)),
            imap.circuit_breaker(mail),
            username,
            run_id=context.run_id,
            timeout_seconds=fetch_settings.task_timeout_seconds,
            retry_number=context.retry_number,
            max_retries=IMAP_RETRY_POLICY.max_retries,
        )
    except MailboxPausedError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc
    _log(context, run.errors, run.warnings)
    result = run.result
    if not run.retry:  # the outcome is final: show it on the mailbox's partition
        log_mailbox_events(context, mail, [result])
    if not result.ok:
        raise dg.Failure(
            f"{username}: {result.error_kind.value}: {result.error}",
            metadata=run.metadata(),
            allow_retries=result.transient,
        )
    context.add_output_metadata(run.metadata())
    return result
