"""Sensors: the spool watcher, the mailbox partitions, and the run-status clean-up."""


import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from mail_pipeline.defs.jobs import email_fetch_job, fetch_mailbox_job, spool_ingest_job
from mail_pipeline.defs.partitions import MAILBOX_PARTITIONS, mailbox_partitions
from mail_pipeline.defs.resources import FETCH_LOCK, ImapResource, SpoolResource, StoreResource
from mail_pipeline.maintenance.stale_tasks import close_tasks_of_run

MONITORED_JOBS = [email_fetch_job, spool_ingest_job, fetch_mailbox_job]

#: Ready files still in ``inbox/`` this long after the last request are requested again.
REQUEST_AGAIN_SECONDS = 120


def ready_files(spool_dir: str | os.PathLike[str]) -> list[tuple[int, str]]:
    """Return (mtime in ns, name) of every ready ``.meta`` marker in ``inbox/``, oldest first.

    Only regular files count (symlinks are never followed); a missing inbox is empty.
    """
    inbox = Path(spool_dir) / "inbox"
    found: list[tuple[int, str]] = []
    try:
        with os.scandir(inbox) as entries:
            for entry in entries:
                if entry.name.endswith(".meta") and entry.is_file(follow_symlinks=False):
                    found.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name))
    except FileNotFoundError:
        return []
    return sorted(found)


@dg.sensor(
    name="haraka_spool_sensor",
    job=spool_ingest_job,
    minimum_interval_seconds=20,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts a spool ingest when Haraka has written new mail into inbox/.",
)
def haraka_spool_sensor(
    context: dg.SensorEvaluationContext, spool: SpoolResource
) -> dg.RunRequest | dg.SkipReason:
    """Request an ingest for new ready files; re-request files still waiting after a while.

    The cursor is the newest file requested (mtime, name) and when. Files that come back to
    ``inbox/`` keep their old mtime (a crashed run's claims, ``spool retry-failed``,
    ``reingest-unmatched``), so files that are still waiting :data:`REQUEST_AGAIN_SECONDS`
    after the last request are requested again. Run keys are deterministic: the newest new
    file, or the waiting set and the time slot of the repeat.
    """
    files = ready_files(spool.directory)
    cursor: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
    last = (int(cursor.get("mtime_ns", 0)), str(cursor.get("name", "")))
    requested_at = float(cursor.get("requested_at", 0.0))
    now = time.time()
    new = [f for f in files if f > last]
    if new:
        newest = new[-1]
        context.update_cursor(json.dumps(
            {"mtime_ns": newest[0], "name": newest[1], "requested_at": now}))
        return dg.RunRequest(
            run_key=f"spool-{newest[0]}-{newest[1]}",
            tags={"mail_pipeline/new_files": str(len(new))},
        )
    if not files:
        return dg.SkipReason("the spool inbox is empty")
    if now - requested_at < REQUEST_AGAIN_SECONDS:
        return dg.SkipReason(
            f"no new mail in the spool ({len(files)} ready file(s) already requested)")
    slot = int(now // REQUEST_AGAIN_SECONDS)
    context.update_cursor(json.dumps({**cursor, "mtime_ns": last[0], "name": last[1],
                                      "requested_at": now}))
    oldest = files[0]
    return dg.RunRequest(
        run_key=f"spool-waiting-{oldest[0]}-{oldest[1]}-{len(files)}-{slot}",
        tags={"mail_pipeline/waiting_files": str(len(files))},
    )


@dg.sensor(
    name="mailbox_partitions_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps the 'mailboxes' partitions in step with users' valid IMAP configs.",
)
def mailbox_partitions_sensor(
    context: dg.SensorEvaluationContext, store: StoreResource, imap: ImapResource
) -> dg.SensorResult | dg.SkipReason:
    """Add a partition per user with a valid IMAP config; drop those of users without one."""
    wanted = {name for _uid, name, ok, _ in imap.config_manager(store.get()).imap_users() if ok}
    have = set(context.instance.get_dynamic_partitions(MAILBOX_PARTITIONS))
    add, drop = sorted(wanted - have), sorted(have - wanted)
    if not add and not drop:
        return dg.SkipReason(f"{len(have)} mailbox partitions, all in step")
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    if add:
        requests.append(mailbox_partitions.build_add_request(add))
    if drop:
        requests.append(mailbox_partitions.build_delete_request(drop))
    return dg.SensorResult(dynamic_partitions_requests=requests)


@dg.run_failure_sensor(
    name="fetch_run_failure_sensor",
    monitored_jobs=MONITORED_JOBS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks the EmailTasks of a failed run FAILED and frees its fetch lease.",
)
def fetch_run_failure_sensor(context: dg.RunFailureSensorContext, store: StoreResource) -> None:
    """Close the open tasks of the failed run and release its lease; log what failed."""
    run = context.dagster_run
    reason = context.failure_event.message or "run failed"
    closed = close_tasks_of_run(store.get(), run.run_id, failed=True, reason=reason,
                                lock_name=FETCH_LOCK)
    failed_steps = sorted({e.step_key for e in context.get_step_failure_events() if e.step_key})
    mailboxes = failing_mailboxes(run.job_name, run.tags, failed_steps)
    context.log.error(
        f"{run.job_name} run {run.run_id} failed ({', '.join(failed_steps) or 'no step'})"
        + (f" for mailbox(es) {', '.join(mailboxes)}" if mailboxes else "")
        + f": {reason}; closed {len(closed)} task(s) and freed its fetch lease"
    )


def failing_mailboxes(
    job_name: str, tags: Mapping[str, str], failed_steps: list[str]
) -> list[str]:
    """Return the mailboxes a failed run was fetching: the partition of a fetch_mailbox_job
    run, or the mapping keys (``<user>_<id>``) of failed ``fetch_mailbox[...]`` steps."""
    if job_name == fetch_mailbox_job.name:
        partition = tags.get("dagster/partition")
        return [partition] if partition else []
    return [step[len("fetch_mailbox["):-1] for step in failed_steps
            if step.startswith("fetch_mailbox[") and step.endswith("]")]


@dg.run_status_sensor(
    name="fetch_run_canceled_sensor",
    run_status=dg.DagsterRunStatus.CANCELED,
    monitored_jobs=MONITORED_JOBS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks the EmailTasks of a cancelled run CANCELLED and frees its fetch lease.",
)
def fetch_run_canceled_sensor(context: dg.RunStatusSensorContext, store: StoreResource) -> None:
    """Close the open tasks of the cancelled run and release its lease."""
    run = context.dagster_run
    closed = close_tasks_of_run(store.get(), run.run_id, failed=False,
                                reason="run was cancelled", lock_name=FETCH_LOCK)
    context.log.info(f"run {run.run_id} cancelled: closed {len(closed)} task(s)")
