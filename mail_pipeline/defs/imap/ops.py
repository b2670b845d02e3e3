"""The IMAP ops: plan the mailboxes, fetch each one, close the IMAP task; one partition.

Each op wires resources to one function of :mod:`mail_pipeline.intake.imap.run`, which makes
the decisions (which mailboxes, retry or record, FAILED or COMPLETED), and turns its result
into log lines and metadata. The failure model is in :mod:`mail_pipeline.defs.fetch.ops`.
"""

import re
from collections.abc import Iterator

import dagster as dg

from mail_pipeline.defs.fetch.ops import BranchSummary
from mail_pipeline.defs.resources import (
    AttachmentsResource,
    FetchSettingsResource,
    ImapResource,
    StoreResource,
    save_service,
)
from mail_pipeline.errors import LeaseLostError
from mail_pipeline.intake.imap.results import MailboxResult
from mail_pipeline.intake.imap.run import (
    MailboxPausedError,
    MailboxRun,
    MailboxWork,
    close_fetch,
    fetch_and_record,
    fetch_named_mailbox,
    mailbox_metadata,
    plan_fetch,
)
from mail_pipeline.storage.store import LockGrant

IMAP_RETRY_POLICY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL)


def mapping_key(username: str, user_id: int) -> str:
    """Return a readable, unique dynamic-output key for a user (``[A-Za-z0-9_]`` only)."""
    return f"{re.sub(r'[^A-Za-z0-9_]', '_', username)[:60]}_{user_id}"


def _log(
    context: dg.OpExecutionContext, errors: tuple[str, ...], warnings: tuple[str, ...]
) -> None:
    for line in errors:
        context.log.error(line)
    for line in warnings:
        context.log.warning(line)


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
    plan = plan_fetch(
        mail,
        imap.config_manager(mail),
        run_id=context.run_id,
        timeout_seconds=fetch_settings.task_timeout_seconds,
    )
    _log(context, (), plan.warnings)
    yield dg.Output(plan.task_id, "task", metadata=plan.metadata())
    for work in plan.work(lock):
        yield dg.DynamicOutput(
            work, output_name="mailboxes", mapping_key=mapping_key(work.username, work.user_id)
        )


@dg.op(retry_policy=IMAP_RETRY_POLICY)
def fetch_mailbox(
    context: dg.OpExecutionContext,
    store: StoreResource,
    attachments: AttachmentsResource,
    imap: ImapResource,
    work: MailboxWork,
) -> MailboxResult:
    """Fetch one user's mailbox. A failed mailbox is recorded, not raised (see module doc)."""
    mail = store.get()
    try:
        run = fetch_and_record(
            mail,
            imap.fetcher(mail, save_service(store, attachments)),
            imap.circuit_breaker(mail),
            work,
            run_id=context.run_id,
            retry_number=context.retry_number,
            max_retries=IMAP_RETRY_POLICY.max_retries,
        )
    except LeaseLostError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc
    if run.retry:
        raise dg.Failure(
            f"{work.username}: {run.result.error} (will retry)",
            metadata=mailbox_metadata(run.result),
        )
    _log(context, run.errors, run.warnings)
    context.add_output_metadata(run.metadata())
    return run.result


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
    closed = close_fetch(store.get(), task, results)
    _log(context, closed.errors, closed.warnings)
    context.add_output_metadata(closed.metadata())
    return BranchSummary("imap", task, closed.counters, closed.failed)


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
        run: MailboxRun = fetch_named_mailbox(
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
    if not result.ok:
        raise dg.Failure(
            f"{username}: {result.error_kind.value}: {result.error}",
            metadata=run.metadata(),
            allow_retries=result.transient,
        )
    context.add_output_metadata(run.metadata())
    return result
