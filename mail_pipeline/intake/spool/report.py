"""What one spool ingest pass did: :class:`IngestResult` (counts, problems, task state)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mail_pipeline.intake.spool.records import ClaimStats, Problem
from mail_pipeline.storage.store import TaskCounters

#: At most this many problems are kept in a result (the rest are only counted).
MAX_PROBLEMS = 1000


@dataclass
class IngestResult:
    """What one ingest pass did.

    Attributes:
        task_id: the EmailTask the counts were recorded into (None if none).
        found: pairs claimed from the inbox (legacy files included).
        saved: deliveries stored (one message for one user).
        duplicates: deliveries that were already stored.
        failed: pairs moved to ``failed/`` (unparseable, too large, bad meta, save failed).
        unmatched: pairs moved to ``unmatched/`` (no known recipient).
        refused: symlinks / non-regular files found and left alone.
        processed: pairs moved to ``processed/``.
        recovered: pairs returned to the inbox from stale claim folders.
        problems: per-file problems (capped at MAX_PROBLEMS; ``problems_dropped`` counts the
            rest).
        task_closed: set by :meth:`SpoolIngestService.ingest_as_task` when its task was
            closed under the pass (e.g. by stale-task cleanup): how it was closed.
    """

    task_id: str | None = None
    found: int = 0
    saved: int = 0
    duplicates: int = 0
    failed: int = 0
    unmatched: int = 0
    refused: int = 0
    processed: int = 0
    recovered: int = 0
    batches: int = 0
    duration_seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    problems_dropped: int = 0
    task_closed: str = ""

    def add_problem(self, problem: Problem) -> None:
        """Record a problem (only the first MAX_PROBLEMS are kept)."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.problems_dropped += 1

    def absorb(self, stats: ClaimStats) -> None:
        """Count what a claim scan refused or quarantined as orphans, then clear ``stats``.

        A refused file seen again by a later scan of the same pass is counted once.
        """
        seen = {p.path for p in self.problems}
        for problem in stats.refused:
            if problem.path in seen:
                continue
            seen.add(problem.path)
            self.refused += 1
            self.add_problem(problem)
        for problem in stats.orphans:
            self.failed += 1
            self.add_problem(problem)
        stats.refused.clear()
        stats.orphans.clear()

    @property
    def counters(self) -> TaskCounters:
        """The counts as EmailTask counters (fetched = found)."""
        return TaskCounters(
            fetched=self.found, saved=self.saved, failed=self.failed, duplicate=self.duplicates
        )

    def summary(self) -> str:
        """One line: the counts."""
        return (
            f"found {self.found}, saved {self.saved}, duplicates {self.duplicates}, "
            f"failed {self.failed}, unmatched {self.unmatched}, refused {self.refused}, "
            f"recovered {self.recovered}"
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the result as JSON-serialisable data (problems capped at 100)."""
        data = asdict(self)
        data["problems"] = [asdict(p) for p in self.problems[:100]]
        return data
