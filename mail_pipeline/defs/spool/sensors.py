"""``haraka_spool_sensor``: starts ``spool_ingest_job`` when Haraka has written new mail."""

import json
import os
import time
from pathlib import Path
from typing import Any

import dagster as dg

from mail_pipeline.defs.resources import SpoolResource
from mail_pipeline.defs.spool.jobs import spool_ingest_job

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


# The job by name, not by object: Dagster binds the Definitions' resources to a job object a
# sensor holds by copying the sensor with SensorDefinition.with_attributes, which passes its
# owners (even none) and so raises a BetaWarning about `owners` on every load.
@dg.sensor(
    name="haraka_spool_sensor",
    job_name=spool_ingest_job.name,
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
        context.update_cursor(
            json.dumps({"mtime_ns": newest[0], "name": newest[1], "requested_at": now})
        )
        return dg.RunRequest(
            run_key=f"spool-{newest[0]}-{newest[1]}",
            tags={"mail_pipeline/new_files": str(len(new))},
        )
    if not files:
        return dg.SkipReason("the spool inbox is empty")
    if now - requested_at < REQUEST_AGAIN_SECONDS:
        return dg.SkipReason(
            f"no new mail in the spool ({len(files)} ready file(s) already requested)"
        )
    slot = int(now // REQUEST_AGAIN_SECONDS)
    context.update_cursor(
        json.dumps({**cursor, "mtime_ns": last[0], "name": last[1], "requested_at": now})
    )
    oldest = files[0]
    return dg.RunRequest(
        run_key=f"spool-waiting-{oldest[0]}-{oldest[1]}-{len(files)}-{slot}",
        tags={"mail_pipeline/waiting_files": str(len(files))},
    )
