"""A mailbox's health as the Dagster UI shows it: the ``mailbox`` asset's events per partition.

Every fetch of a mailbox (a shard step of ``email_fetch_job``, a ``fetch_mailbox_job`` run)
logs, for the mailbox's partition of the ``mailbox`` asset, an evaluation of the
``last_fetch_ok`` asset check: passed when the fetch succeeded, failed (severity ERROR) when
it did not, with the mailbox's state from the store as metadata: last successful fetch, last
error and its kind, failing since, failures in a row, paused.

A successful fetch also logs a materialization of the mailbox's partition of
``fetched_mail`` (the mailbox's mail in the store), an asset of its own so that the check's
evaluations never wait on a materialization of ``mailbox`` (the UI counts a check evaluation
as current only for the checked partition's latest materialization, which a step cannot
name). A run that plans a partition of ``fetched_mail`` and fails without materializing it
leaves that partition **failed**: that is how the mailboxes that failed in an
``email_fetch_job`` run are the ones the backfill dialog offers
(:mod:`mail_pipeline.defs.fetch.assets`).

The state comes from ``mailbox_state`` (:class:`~mail_pipeline.storage.store.MailboxStatus`), as
the fetch has just recorded it.

A shard logs events only where they say something new: every failed fetch, and a successful
one that saved mail or whose mailbox's state before the fetch was not already a success
recorded by a Dagster run. Every event is a write to Dagster's event log; on an idle tick of
200 mailboxes one evaluation per mailbox more than doubled the tick's CPU. Executing the check
from the UI re-reads every partition from the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import dagster as dg

from mail_pipeline.intake.imap.results import MailboxResult
from mail_pipeline.storage.store import MailboxStatus, MailStore

#: The per-mailbox asset (one partition per mailbox) and its health check.
MAILBOX = dg.AssetKey("mailbox")
LAST_FETCH_OK = "last_fetch_ok"
#: The mail of each mailbox in the store (one partition per mailbox): what the fetch
#: materializes (:mod:`mail_pipeline.defs.fetch.assets`).
FETCHED_MAIL = dg.AssetKey("fetched_mail")

_NEVER = "never"


def _when(moment: datetime | None) -> str:
    return _NEVER if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def health_metadata(state: MailboxStatus | None) -> dict[str, Any]:
    """Return what an operator needs to see of a mailbox's state, as metadata values.

    ``state`` None (the mailbox was never recorded, e.g. its user is gone) gives "never"s.
    """
    if state is None:
        return {
            "status": "unknown",
            "last_success": _NEVER,
            "last_error": "none",
            "failing_since": "-",
        }
    failing = state.failing_since is not None
    return {
        "status": "paused" if state.paused else ("failing" if failing else "ok"),
        "last_success": _when(state.last_success_at),
        "last_error": (
            f"{state.last_error_kind}: {state.last_error}" if state.last_error_kind else "none"
        ),
        "failing_since": _when(state.failing_since) if failing else "-",
        # text, not numbers: the UI would plot one series across all the partitions
        "failures_in_a_row": str(state.consecutive_failures),
        "paused": state.paused,
        "last_run_id": state.last_fetch.run_id or "-",
    }


def check_evaluation(
    username: str, passed: bool, state: MailboxStatus | None, description: str
) -> dg.AssetCheckEvaluation:
    """Return the ``last_fetch_ok`` evaluation of ``username``'s partition."""
    return dg.AssetCheckEvaluation(
        asset_key=MAILBOX,
        check_name=LAST_FETCH_OK,
        passed=passed,
        partition=username,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=health_metadata(state),
    )


def still_passing(before: MailboxStatus | None) -> bool:
    """True when a mailbox whose state before a successful fetch was ``before`` needs no new
    evaluation: it was healthy, not paused, and recorded by a Dagster run (which logged it)."""
    return (
        before is not None
        and before.failing_since is None
        and not before.paused
        and before.last_success_at is not None
        and bool(before.last_fetch.run_id)
    )


def materialization(username: str, result: MailboxResult) -> dg.AssetMaterialization:
    """Return the materialization of ``username``'s partition of ``fetched_mail`` after the
    successful fetch ``result``: what it saved."""
    return dg.AssetMaterialization(
        asset_key=FETCHED_MAIL,
        partition=username,
        description=f"fetched: {result.counters.saved} new message(s)",
        metadata={
            "messages_saved": result.counters.saved,
            "duplicates": result.counters.duplicate,
            "failed_messages": result.counters.failed,
        },
    )


def mailbox_events(
    store: MailStore,
    results: Iterable[MailboxResult],
    before: Mapping[int, MailboxStatus] | None = None,
) -> Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation]:
    """Yield, per mailbox of ``results``, its events with the state the store holds now (one
    query for all): for a successful fetch its ``fetched_mail`` materialization and its check
    evaluation; for a failed one its check evaluation alone.

    With ``before`` (the states read before the fetch), a successful fetch that saved nothing
    of a mailbox that was :func:`still_passing` yields nothing: its partition is materialized
    and its check passed already.
    """
    results = [
        r
        for r in results
        if before is None
        or not r.ok
        or r.counters.saved
        or not still_passing(before.get(r.user_id))
    ]
    if not results:
        return
    states = store.mailboxes.states(r.user_id for r in results if r.user_id > 0)
    for r in results:
        state = states.get(r.user_id)
        if r.ok:
            yield materialization(r.username, r)
        description = (
            f"fetched: {r.counters.saved} new message(s)"
            if r.ok
            else f"{r.error_kind.value} error: {r.error}"
        )
        yield check_evaluation(r.username, r.ok, state, description)


def log_mailbox_events(
    context: dg.OpExecutionContext,
    store: MailStore,
    results: Iterable[MailboxResult],
    before: Mapping[int, MailboxStatus] | None = None,
) -> None:
    """Log :func:`mailbox_events` of ``results`` (given ``before``) on the op's step."""
    for event in mailbox_events(store, results, before):
        # log_event handles AssetCheckEvaluation (it records a check evaluation), though its
        # annotation names only materializations, observations and expectations
        context.log_event(event)  # type: ignore[arg-type]
