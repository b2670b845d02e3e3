"""Interleaved rounds and their medians, shared by the ingest benchmarks.

Each round runs every variant once, in the same order (floor, project, floor, project, ...),
so that load from other processes on a shared machine spreads over all of them; a variant's
figure is the median of its rounds, printed with its min-max.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from typing import Any


def load_average() -> list[float]:
    """Return the 1, 5 and 15 minute load averages (``os.getloadavg``), rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def summarize(rates: Sequence[float]) -> dict[str, Any]:
    """Return the median, min, max and every value of ``rates`` (messages per second).

    Raises:
        statistics.StatisticsError: ``rates`` is empty.
    """
    return {
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "rounds": list(rates),
    }


def interleave(
    variants: Sequence[str],
    repeat: int,
    run: Callable[[str, int], dict[str, Any]],
    progress: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """Run ``run(variant, round)`` for every variant in every round, interleaved.

    Returns:
        {variant: {"median", "min", "max", "rounds" (msg/s), "runs" (each run's figures)}}.
    """
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for index in range(repeat):
        for variant in variants:
            figures = run(variant, index)
            runs[variant].append(figures)
            progress(
                f"  round {index + 1}/{repeat} {variant:24} {figures['msgs_per_s']:8.1f} msg/s"
                f"  ({figures['seconds']:.2f} s, load {os.getloadavg()[0]:.1f})"
            )
    return {v: {**summarize([r["msgs_per_s"] for r in runs[v]]), "runs": runs[v]} for v in variants}


def target_line(name: str, value: float, limit: float, *, at_most: bool = False) -> dict[str, Any]:
    """Return a target's record: its name, value, limit and whether it is met."""
    met = value <= limit if at_most else value >= limit
    op = "<=" if at_most else ">="
    return {"target": name, "value": value, "op": op, "limit": limit, "met": met}


def print_targets(targets: Sequence[dict[str, Any]]) -> None:
    """Print each target as ``met`` / ``NOT met`` with its value and limit."""
    print("\ntargets:")
    for t in targets:
        verdict = "met" if t["met"] else "NOT met"
        print(f"  {t['target']:52} {t['value']:6.2f} ({t['op']} {t['limit']:.2f}): {verdict}")
