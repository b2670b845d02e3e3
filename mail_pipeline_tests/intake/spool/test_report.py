"""The result of an ingest pass: counts, the problem cap, task counters (no database)."""

from __future__ import annotations

import json

from mail_pipeline.intake.spool.records import ClaimStats, Problem
from mail_pipeline.intake.spool.report import MAX_PROBLEMS, IngestResult


def test_problems_are_capped_and_counted() -> None:
    result = IngestResult()
    for n in range(MAX_PROBLEMS + 5):
        result.add_problem(Problem(f"p{n}", "bad"))
    assert len(result.problems) == MAX_PROBLEMS and result.problems_dropped == 5
    data = result.as_dict()
    assert len(data["problems"]) == 100 and json.dumps(data)


def test_absorb_counts_a_refused_file_once_and_orphans_as_failed() -> None:
    result = IngestResult()
    stats = ClaimStats(
        refused=[Problem("inbox/x.eml", "symlink")],
        orphans=[Problem("failed/y.meta", "missing_eml")],
    )
    result.absorb(stats)
    assert (result.refused, result.failed) == (1, 1)
    assert stats.refused == [] and stats.orphans == []
    stats.refused.append(Problem("inbox/x.eml", "symlink"))  # seen again by a later scan
    result.absorb(stats)
    assert result.refused == 1 and len(result.problems) == 2


def test_counters_and_summary() -> None:
    result = IngestResult(found=4, saved=5, duplicates=1, failed=2, unmatched=1)
    c = result.counters
    assert (c.fetched, c.saved, c.failed, c.duplicate) == (4, 5, 2, 1)
    assert result.summary().startswith("found 4, saved 5, duplicates 1, failed 2, unmatched 1")
