"""What the benchmark scripts share: their common options, interleaved rounds and medians,
one run in a child process, template stores, targets and ratios, load averages and the JSON
report.

Rounds run every variant once, in the same order (floor, project, floor, project, ...), so
that load from other processes on a shared machine spreads over all of them; a variant's
figure is the median of its rounds, printed with its min-max. Each floor or project run is a
fresh child process (``<script> --child KIND ...``) that prints its figures as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from profile_split import print_split, profiled  # bench/, beside this script

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
#: Where the scripts write their JSON reports and profiles (git-ignored).
RESULTS = ROOT / "bench" / "results"
STORE_KINDS = ("sqlite", "postgresql")

#: The variants of the ingest benchmarks that store mail, each run in a child process.
STORE_VARIANTS = ("floor", "floor-2proc", "project")


# --- rounds and medians --------------------------------------------------------------------


def load_average() -> list[float]:
    """Return the 1, 5 and 15 minute load averages (``os.getloadavg``), rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def median_of(rates: Sequence[float]) -> dict[str, Any]:
    """Return the median, min, max and every value (``rounds``) of ``rates``.

    Raises:
        statistics.StatisticsError: ``rates`` is empty.
    """
    return {
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "rounds": list(rates),
    }


def rounds(
    variants: Sequence[str], repeat: int, run: Callable[[str, int], dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Run ``run(variant, round)`` for every variant in every round, interleaved, printing a
    line per run; ``run`` returns figures with ``msgs_per_s`` and ``seconds``.

    Returns:
        {variant: {"median", "min", "max", "rounds" (msg/s), "runs" (each run's figures)}}.
    """
    print(f"{repeat} interleaved rounds of {', '.join(variants)}", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for index in range(repeat):
        for variant in variants:
            figures = run(variant, index)
            runs[variant].append(figures)
            print(
                f"  round {index + 1}/{repeat} {variant:24} {figures['msgs_per_s']:8.1f} msg/s"
                f"  ({figures['seconds']:.2f} s, load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    return {v: {**median_of([r["msgs_per_s"] for r in runs[v]]), "runs": runs[v]} for v in variants}


# --- options -------------------------------------------------------------------------------


def ingest_parser(
    description: str,
    *,
    n: int,
    batch_size: int,
    rss_flag: str,
    json_name: str,
    child_options: Sequence[str],
) -> argparse.ArgumentParser:
    """Return a parser with the ingest benchmarks' options: ``--n``, ``--repeat``, the RSS
    sizes (``rss_flag``, stored as ``rss_sizes``), ``--batch-size``, ``--stores``,
    ``--profile``, ``--json`` (default ``bench/results/<json_name>``), and the hidden options
    of a child run: ``--child``, ``--url``, ``--attachments``, ``--profile-out`` and each of
    ``child_options``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--n", type=int, default=n, help="messages of the throughput runs")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument(
        rss_flag,
        dest="rss_sizes",
        metavar="SIZES",
        default="1000,10000",
        help="sizes for the RSS comparison (default 1000,10000; '' for none)",
    )
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--stores", default=",".join(STORE_KINDS))
    parser.add_argument(
        "--profile",
        nargs="?",
        const="sqlite",
        choices=STORE_KINDS,
        help="add one project ingest under cProfile (default store: sqlite)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS / json_name)
    parser.add_argument("--child", choices=STORE_VARIANTS, help=argparse.SUPPRESS)
    for option in ("--url", "--attachments", "--profile-out", *child_options):
        parser.add_argument(option, help=argparse.SUPPRESS)
    return parser


def parse_ingest_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
) -> argparse.Namespace:
    """Parse ``argv`` with an :func:`ingest_parser`; for a parent run (no ``--child``) check
    the options and turn ``stores`` into ``kinds`` (a list) and ``rss_sizes`` into a sorted
    list of ints.

    Returns:
        The parsed arguments.

    Raises:
        SystemExit: an option is out of range (the parser's usage error).
    """
    args = parser.parse_args(argv)
    if args.child:
        return args
    if args.n <= 0 or args.batch_size <= 0 or args.repeat <= 0:
        parser.error("--n, --batch-size and --repeat must be positive")
    args.kinds = [k.strip() for k in args.stores.split(",") if k.strip()]
    if not args.kinds or any(k not in STORE_KINDS for k in args.kinds):
        parser.error("--stores takes sqlite and/or postgresql")
    try:
        args.rss_sizes = sorted(int(x) for x in args.rss_sizes.split(",") if x.strip())
    except ValueError:
        parser.error("the RSS sizes are whole numbers separated by commas")
    return args


# --- a run in a child process --------------------------------------------------------------


def child_figures(once: Callable[[], dict[str, Any]], profile_out: str | None) -> dict[str, Any]:
    """Run ``once``; with ``profile_out``, under cProfile (its threads too), the table saved
    there.

    Returns:
        ``once``'s figures, with ``profile`` (the split by area) when profiled.
    """
    if not profile_out:
        return once()
    figures, split = profiled(once, Path(profile_out))
    figures["profile"] = split
    return figures


def run_child(
    script: str, kind: str, options: dict[str, str], profile_out: Path | None = None
) -> dict[str, Any]:
    """Run ``script --child kind`` with ``options`` ({flag: value}) in a fresh Python process.

    Returns:
        The figures the child printed as JSON on its last line of output.

    Raises:
        RuntimeError: the child failed (its stderr's tail is in the message).
    """
    argv = [sys.executable, str(Path(script).resolve()), "--child", kind]
    for flag, value in options.items():
        argv += [flag, value]
    if profile_out is not None:
        argv += ["--profile-out", str(profile_out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} child failed: {done.stderr.strip()[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- stores --------------------------------------------------------------------------------


class TemplateStores:
    """A prepared template store per kind ("sqlite" or "postgresql"), and fresh copies of it
    for each run (a copied SQLite file; a PostgreSQL database made from the template)."""

    def __init__(self, work: Path, pg: Any) -> None:
        """Keep SQLite files in ``work`` and PostgreSQL databases on the started ``pg``."""
        self.work = work
        self.pg = pg
        self.templates: dict[str, str] = {}
        self._count = 0

    def add(self, kind: str, prepare: Callable[[str], T]) -> T:
        """Make the template of ``kind`` with ``prepare(url)`` (migrate it, add users).

        Returns:
            What ``prepare`` returned.
        """
        if kind == "sqlite":
            path = self.work / "template.db"
            self.templates[kind] = str(path)
            return prepare(f"sqlite:///{path}")
        name = self.pg.create_database()
        self.templates[kind] = name
        return prepare(str(self.pg.url(name)))

    def fresh(self, kind: str) -> str:
        """Return the URL of a new copy of the template of ``kind``."""
        self._count += 1
        if kind == "sqlite":
            path = self.work / f"run-{self._count}.db"
            shutil.copyfile(self.templates[kind], path)
            return f"sqlite:///{path}"
        return str(self.pg.url(self.pg.create_database(template=self.templates[kind])))


def imaps_account(server: Any, username: str, password: str, **imap: Any) -> dict[str, Any]:
    """Return the fetch config of an IMAPS account of ``username`` on the Dovecot fixture
    ``server`` (its CA trusted), INBOX only, no age limit; ``imap`` adds IMAP fields."""
    return {
        "imap_config": {
            "imap_host": server.host,
            "imap_ssl_port": server.imaps_port,
            "security": "ssl",
            "username": username,
            "password": password,
            "ca_file": str(server.ca_cert_path),
            **imap,
        },
        "filter_config": {"folders": ["INBOX"], "max_age_days": None},
    }


# --- the report ----------------------------------------------------------------------------


def start_report(**fields: Any) -> dict[str, Any]:
    """Print the load average at the start.

    Returns:
        A report of ``fields`` and ``load_avg_start``.
    """
    report = {**fields, "load_avg_start": load_average()}
    print(f"load average at start: {report['load_avg_start']}", flush=True)
    return report


def compare_rows(
    summary: dict[str, dict[str, Any]], kinds: Sequence[str], expected: int
) -> dict[str, bool]:
    """Compare the rows that the first floor run and the first project run of each store kind
    stored (their figures carry the store's ``url``), printing a line per kind.

    Returns:
        {kind: the rows are equal and there are ``expected`` of them}.
    """
    from floor import stored_rows

    same: dict[str, bool] = {}
    for kind in kinds:
        floor_rows = stored_rows(summary[f"{kind}/floor"]["runs"][0]["url"])
        project_rows = stored_rows(summary[f"{kind}/project"]["runs"][0]["url"])
        same[kind] = floor_rows == project_rows and len(floor_rows) == expected
        print(f"{kind}: floor and project stored the same {len(floor_rows)} rows: {same[kind]}")
    return same


def floor_ratios(
    summary: dict[str, dict[str, Any]], kind: str, parse_rate: float
) -> dict[str, float]:
    """Return the project's median of store ``kind`` as a ratio of the serial floor's, the
    two-process floor's and the parse-only rate ``parse_rate``."""
    project = float(summary[f"{kind}/project"]["median"])
    return {
        f"{kind}_project_vs_floor": project / summary[f"{kind}/floor"]["median"],
        f"{kind}_project_vs_floor_2proc": project / summary[f"{kind}/floor-2proc"]["median"],
        f"{kind}_project_vs_parse_only": project / parse_rate,
    }


def target_line(name: str, value: float, limit: float, *, at_most: bool = False) -> dict[str, Any]:
    """Return a target's record: its name, value, limit and whether it is met."""
    met = value <= limit if at_most else value >= limit
    op = "<=" if at_most else ">="
    return {"target": name, "value": value, "op": op, "limit": limit, "met": met}


def rss_target(
    rss: dict[str, dict[str, Any]], sizes: Sequence[int], key: str, limit: float
) -> dict[str, Any] | None:
    """Return the target on the peak RSS (figure ``key``) of the largest of ``sizes`` over
    that of the smallest, or None with fewer than two sizes."""
    if len(sizes) < 2:
        return None
    small, large = str(sizes[0]), str(sizes[-1])
    ratio = rss[large][key] / rss[small][key]
    return target_line(f"peak RSS n={large} / n={small}", ratio, limit, at_most=True)


def same_rows_targets(same: dict[str, bool]) -> list[dict[str, Any]]:
    """Return a target per store kind: the floor's rows equal the project's."""
    return [
        target_line(f"{kind}: floor rows == project rows", float(ok), 1.0)
        for kind, ok in same.items()
    ]


def print_ratios(ratios: dict[str, float]) -> None:
    """Print each ratio on a line of its own."""
    for name, value in ratios.items():
        print(f"  {name:36} {value:6.2f}")


def print_targets(targets: Sequence[dict[str, Any]]) -> None:
    """Print each target as ``met`` / ``NOT met`` with its value and limit."""
    print("\ntargets:")
    for t in targets:
        verdict = "met" if t["met"] else "NOT met"
        print(f"  {t['target']:52} {t['value']:6.2f} ({t['op']} {t['limit']:.2f}): {verdict}")


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON to ``path`` (its folder made) and say so.

    Raises:
        OSError: the file cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"written {path}")


def finish_report(report: dict[str, Any], path: Path) -> int:
    """Print the report's ``targets``, its ``profile`` (if any) and the load averages, then
    write it to ``path``.

    Returns:
        The exit status: 0 when every target is met, else 1.

    Raises:
        OSError: the file cannot be written.
    """
    print_targets(report["targets"])
    if "profile" in report:
        profile = report["profile"]
        print_split(
            f"profile of one project ingest ({profile['store']}, "
            f"{profile['msgs_per_s']:.0f} msg/s under cProfile)",
            profile["profile"],
        )
    print(f"\nload average: start {report['load_avg_start']}, end {report['load_avg_end']}")
    write_report(path, report)
    return 0 if all(t["met"] for t in report["targets"]) else 1
