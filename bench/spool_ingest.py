"""Benchmark of the Haraka spool ingest against its floor, and its peak memory (issue 13).

    .venv/bin/python bench/spool_ingest.py [--n 2000] [--repeat 3] [--rss-n 1000,10000]
        [--stores sqlite,postgresql] [--profile [sqlite|postgresql]] [--json PATH]

Generates N messages of about 20 KB (a third with one attachment, a quarter to two users) as
Haraka spool pairs (``<uuid>.eml`` + ``<uuid>.meta``) routed to five users, then, on SQLite and
on a throw-away PostgreSQL started like the test suite's
(``mail_pipeline_tests.fixtures.postgres``; it runs with ``fsync=off``), measures in
interleaved rounds (median of ``--repeat``):

- ``floor``: the same storing work with no layers (:mod:`floor`: read, ``parse_message``,
  attachment files with one ``syncfs`` per batch, bare ``sqlite3`` ``executemany`` /
  ``psycopg2`` ``execute_values`` of the same columns into the project's schema);
- ``floor-2proc``: the floor with reading and parsing in a second process;
- ``project``: ``SpoolIngestService.ingest_as_task`` (claim, read, parse, route, save, move;
  durable defaults: attachments and destination folders fsynced; its EmailTask).

Every run is a fresh child process (imports and set-up are outside the timer) on a fresh
hard-linked copy of the spool and a fresh copy of a migrated store; the rows of the first
floor and project runs of each store are compared (they must be the same). Also reported, not
a target: parse-only throughput (``parse_message`` over the bytes in memory). Peak RSS
(``VmHWM`` of a child running one project ingest on SQLite) at each ``--rss-n``.

Targets: project >= 0.85 x the serial floor on SQLite, >= 0.75 x on PostgreSQL; RSS(largest)
<= 1.3 x RSS(smallest). ``--profile`` adds one project ingest under cProfile, split by area
(SQL/ORM, parse, file IO, renames). Load averages at start and end are printed; everything
goes to ``--json`` (default ``bench/results/spool_ingest.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from floor import spool_floor, stored_rows  # bench/, beside this script
from profile_split import print_split, profiled
from rounds import interleave, load_average, print_targets, target_line
from rss import peak_rss_kb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

USERS = [f"user{i}@bench.example" for i in range(5)]
VARIANTS = ("floor", "floor-2proc", "project")
TARGET_VS_FLOOR = {"sqlite": 0.85, "postgresql": 0.75}
TARGET_RSS_RATIO = 1.3


def generate(spool: Path, n: int, seed: int = 1) -> int:
    """Write ``n`` spool pairs of about 20 KB into ``spool/inbox``; return the deliveries
    (message x user) they make."""
    from mail_pipeline_tests.fixtures.spool_files import make_raw, write_pair

    rng = random.Random(seed)
    deliveries = 0
    for i in range(n):
        attachment = rng.randbytes(6000) if i % 3 == 0 else None
        rcpt = rng.sample(USERS, 2 if i % 4 == 0 else 1)
        raw = make_raw(
            i, to=", ".join(rcpt), attachment=attachment, pad_to=20000 - (8200 if attachment else 0)
        )
        write_pair(spool, raw, rcpt)
        deliveries += len(rcpt)
    return deliveries


def clone(src: Path, dst: Path) -> None:
    """Copy a generated spool with hard links (the ingest renames, never writes, the files)."""
    shutil.copytree(src, dst, copy_function=os.link)


def parse_only(spool: Path) -> dict[str, float]:
    """``parse_message`` over every ``.eml`` of ``spool/inbox``, bytes read beforehand."""
    from mail_pipeline.mime import parse_message

    raws = [p.read_bytes() for p in sorted((spool / "inbox").glob("*.eml"))]
    start = time.perf_counter()
    for raw in raws:
        parse_message(raw, max_size=25 * 1024 * 1024)
    elapsed = time.perf_counter() - start
    return {"messages": len(raws), "seconds": elapsed, "msgs_per_s": len(raws) / elapsed}


def prepare_store(url: str) -> None:
    """Migrate the store at ``url`` (the project's migrations) and add the five users."""
    from mail_pipeline.storage.store import MailStore

    store = MailStore(url)
    store.upgrade()
    for i, address in enumerate(USERS):
        store.users.add(f"user{i}", address)
    store.dispose()


# --- one run, in a child process ---------------------------------------------------------


def run_project(url: str, spool: Path, attachments: Path, batch_size: int) -> dict[str, Any]:
    """One ``SpoolIngestService.ingest_as_task`` pass; return its figures.

    Raises:
        SystemExit: the pass failed, quarantined or left mail unmatched.
    """
    from mail_pipeline.intake.spool.ingest import SpoolIngestService
    from mail_pipeline.storage.store import MailStore

    store = MailStore(url)
    service = SpoolIngestService(store, spool, attachments, batch_size=batch_size)
    start = time.perf_counter()
    result = service.ingest_as_task()
    elapsed = time.perf_counter() - start
    store.dispose()
    if result.failed or result.unmatched or result.found == 0:
        raise SystemExit(f"ingest went wrong: {result.summary()}")
    return {
        "messages": result.found,
        "deliveries": result.saved,
        "duplicates": result.duplicates,
        "seconds": elapsed,
        "msgs_per_s": result.found / elapsed,
        "batches": result.batches,
    }


def warm_up(kind: str) -> None:
    """Import what ``kind`` uses and parse one message, before the timer: the parser's first
    call compiles and imports lazily, the same cost for every kind."""
    from mail_pipeline.mime import parse_message
    from mail_pipeline_tests.fixtures.spool_files import make_raw

    if kind == "project":
        import mail_pipeline.intake.spool.ingest  # noqa: F401
    parse_message(make_raw(0, attachment=b"warm" * 1500, pad_to=12000))
    parse_message(make_raw(1, pad_to=20000))


def child(args: argparse.Namespace) -> None:
    """``--child KIND``: one run, then print its figures and this process's peak RSS."""
    spool, attachments = Path(args.spool), Path(args.attachments)
    warm_up(args.child)

    def once() -> dict[str, Any]:
        if args.child == "project":
            return run_project(args.url, spool, attachments, args.batch_size)
        two = args.child == "floor-2proc"
        return spool_floor(
            args.url, spool, attachments, args.batch_size, parse_in_worker=two
        ).as_dict()

    if args.profile_out:
        figures, split = profiled(once, Path(args.profile_out))
        figures["profile"] = split
    else:
        figures = once()
    figures["maxrss_kib"] = peak_rss_kb()  # VmHWM: ru_maxrss carries the parent's over exec
    print(json.dumps(figures))


def in_child(
    kind: str,
    url: str,
    spool: Path,
    attachments: Path,
    batch_size: int,
    profile_out: Path | None = None,
) -> dict[str, Any]:
    """Run one ``kind`` run in a fresh Python process; return its figures.

    Raises:
        RuntimeError: the child failed (its stderr's tail is in the message).
    """
    argv = [sys.executable, __file__, "--child", kind, "--url", url, "--spool", str(spool)]
    argv += ["--attachments", str(attachments), "--batch-size", str(batch_size)]
    if profile_out is not None:
        argv += ["--profile-out", str(profile_out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} child failed: {done.stderr.strip()[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- stores --------------------------------------------------------------------------------


class Stores:
    """A migrated template store per kind, and fresh copies of it for each run."""

    def __init__(self, work: Path, pg: Any) -> None:
        self.work = work
        self.pg = pg
        self.templates: dict[str, str] = {}
        self._count = 0

    def add(self, kind: str) -> None:
        """Make the template of ``kind`` ("sqlite" or "postgresql")."""
        if kind == "sqlite":
            path = self.work / "template.db"
            prepare_store(f"sqlite:///{path}")
            self.templates[kind] = str(path)
        else:
            self.pg.start()
            name = self.pg.create_database()
            prepare_store(self.pg.url(name))
            self.templates[kind] = name

    def fresh(self, kind: str) -> str:
        """Return the URL of a new copy of the template of ``kind``."""
        self._count += 1
        if kind == "sqlite":
            path = self.work / f"run-{self._count}.db"
            shutil.copyfile(self.templates[kind], path)
            return f"sqlite:///{path}"
        return str(self.pg.url(self.pg.create_database(template=self.templates[kind])))


# --- main --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="messages for the throughput runs")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--rss-n", default="1000,10000", help="sizes for the RSS runs ('' none)")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="sqlite",
        choices=("sqlite", "postgresql"),
        help="add one project ingest under cProfile (default store: sqlite)",
    )
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "spool_ingest.json"))
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--spool", help=argparse.SUPPRESS)
    parser.add_argument("--attachments", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    return parser


def main() -> int:
    parser = build_parser()
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    if args.n <= 0 or args.batch_size <= 0 or args.repeat <= 0:
        parser.error("--n, --batch-size and --repeat must be positive")
    kinds = [k.strip() for k in args.stores.split(",") if k.strip()]
    if not kinds or any(k not in TARGET_VS_FLOOR for k in kinds):
        parser.error("--stores takes sqlite and/or postgresql")
    rss_sizes = sorted(int(x) for x in args.rss_n.split(",") if x.strip())

    from mail_pipeline_tests.fixtures.postgres import PostgresServer

    work = Path(tempfile.mkdtemp(prefix="spool-bench-"))
    work.chmod(0o755)  # the PostgreSQL server runs as the postgres user
    pg = PostgresServer(work / "pg")
    results: dict[str, Any] = {
        "n": args.n,
        "batch_size": args.batch_size,
        "repeat": args.repeat,
        "load_avg_start": load_average(),
    }
    print(f"load average at start: {results['load_avg_start']}", flush=True)
    try:
        print(f"generating {args.n} messages ...", flush=True)
        template = work / "template"
        expected = generate(template, args.n)
        results["expected_deliveries"] = expected
        results["avg_size_bytes"] = (
            sum(p.stat().st_size for p in (template / "inbox").glob("*.eml")) // args.n
        )
        stores = Stores(work, pg)
        for kind in kinds:
            stores.add(kind)

        runs = 0

        def run(name: str, index: int) -> dict[str, Any]:
            nonlocal runs
            runs += 1
            kind, variant = name.split("/")
            url = stores.fresh(kind)
            spool = work / f"spool-{runs}"
            clone(template, spool)
            figures = in_child(variant, url, spool, work / f"att-{runs}", args.batch_size)
            shutil.rmtree(spool, ignore_errors=True)
            shutil.rmtree(work / f"att-{runs}", ignore_errors=True)
            if figures["messages"] != args.n or figures["deliveries"] != expected:
                raise SystemExit(f"{name}: stored {figures} instead of {expected} deliveries")
            figures["url"] = url
            return figures

        names = [f"{kind}/{variant}" for kind in kinds for variant in VARIANTS]
        print(f"{args.repeat} interleaved rounds of {', '.join(names)}", flush=True)
        summary = interleave(names, args.repeat, run, lambda line: print(line, flush=True))
        results["runs"] = summary

        same: dict[str, bool] = {}
        for kind in kinds:
            floor_rows = stored_rows(summary[f"{kind}/floor"]["runs"][0]["url"])
            project_rows = stored_rows(summary[f"{kind}/project"]["runs"][0]["url"])
            same[kind] = floor_rows == project_rows and len(floor_rows) == expected
            print(f"{kind}: floor and project stored the same {len(floor_rows)} rows: {same[kind]}")
        results["same_rows"] = same

        results["parse_only"] = parse_only(template)
        print(f"parse-only: {results['parse_only']['msgs_per_s']:.0f} msg/s", flush=True)

        if args.profile:
            spool = work / "spool-profile"
            clone(template, spool)
            figures = in_child(
                "project",
                stores.fresh(args.profile),
                spool,
                work / "att-profile",
                args.batch_size,
                profile_out=ROOT / "bench" / "results" / f"spool_ingest_{args.profile}.prof",
            )
            results["profile"] = {"store": args.profile, **figures}

        rss: dict[str, Any] = {}
        for size in rss_sizes:
            spool = work / f"spool-rss-{size}"
            generate(spool, size, seed=size)
            url = f"sqlite:///{work / f'rss-{size}.db'}"
            prepare_store(url)
            figures = in_child("project", url, spool, work / f"att-rss-{size}", args.batch_size)
            shutil.rmtree(spool, ignore_errors=True)
            rss[str(size)] = figures
            print(
                f"RSS n={size:<6} {figures['maxrss_kib'] / 1024:8.1f} MiB "
                f"({figures['msgs_per_s']:.0f} msg/s)",
                flush=True,
            )
        results["rss"] = rss
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    results["load_avg_end"] = load_average()

    ratios: dict[str, float] = {}
    targets: list[dict[str, Any]] = []
    print(
        f"\nspool ingest, {args.n} x ~{results['avg_size_bytes']} bytes, batch "
        f"{args.batch_size}, median of {args.repeat} (min-max), msg/s:"
    )
    for kind in kinds:
        floor = summary[f"{kind}/floor"]["median"]
        for variant in VARIANTS:
            s = summary[f"{kind}/{variant}"]
            print(
                f"  {kind:10} {variant:12} {s['median']:8.1f}  ({s['min']:.1f}-{s['max']:.1f})"
                f"  {s['median'] / floor:5.2f} x floor"
            )
        project = summary[f"{kind}/project"]["median"]
        ratios[f"{kind}_project_vs_floor"] = project / floor
        ratios[f"{kind}_project_vs_floor_2proc"] = (
            project / summary[f"{kind}/floor-2proc"]["median"]
        )
        ratios[f"{kind}_project_vs_parse_only"] = project / results["parse_only"]["msgs_per_s"]
        targets.append(
            target_line(f"{kind}: project / serial floor", project / floor, TARGET_VS_FLOOR[kind])
        )
    print(f"  parse-only (reported, no target): {results['parse_only']['msgs_per_s']:8.1f}")
    if len(rss_sizes) >= 2:
        small, large = str(rss_sizes[0]), str(rss_sizes[-1])
        ratio = rss[large]["maxrss_kib"] / rss[small]["maxrss_kib"]
        ratios["rss_large_vs_small"] = ratio
        targets.append(
            target_line(f"peak RSS n={large} / n={small}", ratio, TARGET_RSS_RATIO, at_most=True)
        )
    for name, value in ratios.items():
        print(f"  {name:36} {value:6.2f}")
    for kind, ok in results["same_rows"].items():
        targets.append(target_line(f"{kind}: floor rows == project rows", float(ok), 1.0))
    results["ratios"] = ratios
    results["targets"] = targets
    print_targets(targets)
    if "profile" in results:
        print_split(
            f"profile of one project ingest ({results['profile']['store']}, "
            f"{results['profile']['msgs_per_s']:.0f} msg/s under cProfile)",
            results["profile"]["profile"],
        )
    print(f"\nload average: start {results['load_avg_start']}, end {results['load_avg_end']}")
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return 0 if all(t["met"] for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
