"""The ``fetched_mail`` asset: each mailbox's mail in the store, one partition per mailbox,
materialized by the fetch graph.

The asset's computation is the whole fetch (:func:`email_fetch`): the lease, stale-task
cleanup, the IMAP fan-out over the run's mailboxes, the spool branch, the release and the
verdict. ``email_fetch_job`` (:mod:`mail_pipeline.defs.fetch.jobs`) is the job of this asset;
the schedule runs it over every partition, and a backfill of some partitions fetches just
those mailboxes (the spool is ingested by every run, as on every tick).

What Dagster shows per partition:

* a materialization when a fetch of the mailbox saved mail or brought it back to health (the
  first successful fetch, or the first after failures), logged by the step that fetched it;
  an idle, healthy mailbox logs nothing, so a tick over many idle mailboxes stays cheap;
* **failed** when the latest run that planned it failed without materializing it: the run
  fails at its end when a mailbox failed (:func:`~mail_pipeline.defs.fetch.ops.
  report_failed_mailboxes`), so exactly the failed mailboxes are left failed; they stay so
  until a fetch of them succeeds. These are the partitions the backfill dialog offers as
  "failed".

The mailbox itself is the ``mailbox`` asset (:mod:`mail_pipeline.defs.imap.assets`), the
IMAP account as it is outside, with the check ``last_fetch_ok``: the last fetch's outcome, the
last successful fetch, the last error and since when. It is never materialized, so its
check's evaluations are always current.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from mail_pipeline.defs.fetch.ops import (
    acquire_fetch_lock,
    cleanup_stale_tasks_op,
    release_fetch_lock,
    report_failed_mailboxes,
)
from mail_pipeline.defs.imap.health import FETCHED_MAIL
from mail_pipeline.defs.imap.ops import close_imap_fetch, fetch_mailbox_shard, plan_imap_fetch
from mail_pipeline.defs.imap.partitions import mailbox_partitions
from mail_pipeline.defs.spool.ops import ingest_spool

#: The graph's name: the prefix of its steps' keys (``email_fetch.report_failed_mailboxes``) and
#: of its ops' run config (``ops: {email_fetch: {ops: {plan_imap_fetch: ...}}}``).
FETCH_GRAPH = "email_fetch"


def fetch_step(op_name: str) -> str:
    """Return the step key of the op ``op_name`` of the fetch graph (the base of a mapped
    step's key, ``email_fetch.fetch_mailbox_shard`` of ``email_fetch.fetch_mailbox_shard[s1]``)."""
    return f"{FETCH_GRAPH}.{op_name}"


@dg.graph(name=FETCH_GRAPH)
def email_fetch() -> Any:
    """Lock → stale-task cleanup → IMAP fan-out per shard of mailboxes and spool ingest →
    release → the verdict on failed mailboxes (fails the run when any failed)."""
    lock = cleanup_stale_tasks_op(acquire_fetch_lock())
    shards, task = plan_imap_fetch(lock)
    imap = close_imap_fetch(task, shards.map(fetch_mailbox_shard).collect())
    spool = ingest_spool(lock)
    return report_failed_mailboxes(imap, after=release_fetch_lock(lock, imap, spool))


fetched_mail_asset = dg.AssetsDefinition.from_graph(
    email_fetch,
    keys_by_output_name={"result": FETCHED_MAIL},
    partitions_def=mailbox_partitions,
    # a backfill of many mailboxes is one run, fetched in shards like a scheduled tick
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="mailboxes",
    tags_by_output_name={"result": {"dagster/kind/imap": ""}},  # what kinds={"imap"} sets
    descriptions_by_output_name={
        "result": (
            "One user's mail in the store (one partition per mailbox), fetched from the "
            "mailbox by email_fetch_job. A partition is materialized when a fetch saved mail "
            "or brought the mailbox back to health, and failed when its latest fetch failed: "
            "select the failed partitions and launch a backfill to fetch them again (once the "
            "cause is fixed). The mailbox asset's check last_fetch_ok says why a mailbox fails."
        )
    },
)
