"""The spool side of a fetch run: one ingest pass under a task of its own, measured.

:func:`run_ingest` is what the Dagster ops of :mod:`mail_pipeline.defs.spool.ops` call: it runs
:meth:`SpoolIngestService.ingest_as_task`, times it, and (when asked) measures the spool it left
for the ``mail_metrics`` asset. A failed measurement is only a warning: the ingest is done.
No Dagster imports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from mail_pipeline.intake.spool.ingest import IngestResult, SpoolIngestService
from mail_pipeline.maintenance.metrics import SpoolMetrics
from mail_pipeline.storage.store import LockGrant

#: At most this many per-file problems are logged per pass (the task's log has them all).
MAX_PROBLEMS_LOGGED = 20


@dataclass(frozen=True)
class SpoolRun:
    """One ingest pass: its result, how long it took, the spool after it, lines to log."""

    result: IngestResult
    seconds: float
    status: SpoolMetrics | None = None
    warnings: tuple[str, ...] = ()

    def metadata(self) -> dict[str, bool | int | float]:
        """Return what the pass did, as metadata for the UI."""
        r = self.result
        return {
            "task_closed_under_run": bool(r.task_closed),
            "found": r.found,
            "messages_saved": r.saved,
            "duplicates": r.duplicates,
            "failed": r.failed,
            "unmatched": r.unmatched,
            "refused": r.refused,
            "recovered": r.recovered,
            "seconds": round(self.seconds, 3),
        }


def run_ingest(
    service: SpoolIngestService,
    *,
    run_id: str | None,
    lease: LockGrant | None = None,
    measure: Callable[[], SpoolMetrics] | None = None,
) -> SpoolRun:
    """Ingest the spool once under a HARAKA_EMAIL_FETCH task of run ``run_id``, keeping its
    heartbeat (and ``lease``) fresh; then call ``measure`` (if given) for the spool's state.

    Returns:
        The pass. ``warnings`` holds: how the task was closed under the pass (if it was), the
        first :data:`MAX_PROBLEMS_LOGGED` per-file problems, and why ``measure`` failed (then
        ``status`` is None).

    Raises:
        LeaseLostError: another run holds ``lease``.
        SpoolError, SQLAlchemyError: the pass failed (its task is marked FAILED).
    """
    started = time.monotonic()
    result = service.ingest_as_task(run_id=run_id, lease=lease)
    seconds = time.monotonic() - started
    warnings: list[str] = []
    if result.task_closed:
        warnings.append(
            f"{result.task_closed} when the ingest finished: the work was done and "
            "is recorded in the task's log"
        )
    warnings.extend(f"spool: {problem}" for problem in result.problems[:MAX_PROBLEMS_LOGGED])
    status: SpoolMetrics | None = None
    if measure is not None:
        try:
            status = measure()
        except Exception as exc:  # only a report: the ingest itself succeeded
            warnings.append(f"spool status not measured: {type(exc).__name__}: {exc}")
    return SpoolRun(result, seconds, status, tuple(warnings))
