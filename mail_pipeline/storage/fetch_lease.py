"""Taking the fetch lease for a run, or recording why the run does nothing.

Only one fetch may run at a time. A scheduled run that finds the lease held by another live
run does not wait: it records a SKIPPED EmailTask for each source, with the holder in the
reason, so the operator sees in the task history why this run fetched nothing (the next tick
fetches). A run an operator asked for (a backfill of failed mailboxes) waits for the lease a
while first, so that it is not lost to a scheduled run that happened to be going on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mail_pipeline.storage.store import EmailSource, LockGrant, MailStore


@dataclass(frozen=True)
class FetchLease:
    """The outcome of :func:`take_fetch_lease`: the grant, or why there is none."""

    grant: LockGrant | None
    #: why the run was skipped ("" when the lease was granted)
    skipped_because: str = ""


#: How often a waiting run tries the lease again.
WAIT_POLL_SECONDS = 2.0


def take_fetch_lease(
    store: MailStore,
    name: str,
    ttl_seconds: int,
    run_id: str,
    *,
    wait_seconds: float = 0.0,
    poll_seconds: float = WAIT_POLL_SECONDS,
) -> FetchLease:
    """Take lease ``name`` for ``run_id`` for ``ttl_seconds``, trying again every
    ``poll_seconds`` for up to ``wait_seconds`` while another run holds it.

    Returns:
        A :class:`FetchLease` with the grant; or, when another run still holds the lease, one
        with no grant and the reason, after recording a SKIPPED task per source with that
        reason (and how long this run waited, if it did).
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        token = store.locks.acquire(
            name, ttl_seconds, run_id=run_id, owner_info=f"dagster run {run_id}"
        )
        if token is not None:
            return FetchLease(LockGrant(name, token, ttl_seconds))
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(poll_seconds, left))
    holder = store.locks.live(name)
    reason = (
        f"fetch lock held by run {holder.run_id} until {holder.expires_at:%H:%M:%S}"
        if holder
        else "fetch lock held by another run"
    ) + (f" (waited {wait_seconds:.0f} s)" if wait_seconds > 0 else "")
    for source in EmailSource:
        task = store.tasks.create(source, run_id=run_id, message="fetch scheduled")
        store.tasks.mark_skipped(task.task_id, reason)
    return FetchLease(None, reason)
