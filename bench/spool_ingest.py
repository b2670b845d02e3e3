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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # bench/, beside this script
from floor import spool_floor
from rss import peak_rss_kb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

USERS = [f"user{i}@bench.example" for i in range(5)]
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

    figures = common.child_figures(once, args.profile_out)
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
    options = {"--url": url, "--spool": str(spool), "--attachments": str(attachments)}
    options["--batch-size"] = str(batch_size)
    return common.run_child(__file__, kind, options, profile_out)


# --- main --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of this script's options (and of its child runs)."""
    return common.ingest_parser(
        __doc__.splitlines()[0],
        n=2000,
        batch_size=200,
        rss_flag="--rss-n",
        json_name="spool_ingest.json",
        child_options=("--spool",),
    )


def main(argv: list[str] | None = None) -> int:
    args = common.parse_ingest_args(build_parser(), argv)
    if args.child:
        child(args)
        return 0
    kinds, rss_sizes = args.kinds, args.rss_sizes

    from mail_pipeline_tests.fixtures.postgres import PostgresServer

    work = Path(tempfile.mkdtemp(prefix="spool-bench-"))
    work.chmod(0o755)  # the PostgreSQL server runs as the postgres user
    pg = PostgresServer(work / "pg")
    results = common.start_report(n=args.n, batch_size=args.batch_size, repeat=args.repeat)
    try:
        print(f"generating {args.n} messages ...", flush=True)
        template = work / "template"
        expected = generate(template, args.n)
        results["expected_deliveries"] = expected
        results["avg_size_bytes"] = (
            sum(p.stat().st_size for p in (template / "inbox").glob("*.eml")) // args.n
        )
        if "postgresql" in kinds:
            pg.start()
        stores = common.TemplateStores(work, pg)
        for kind in kinds:
            stores.add(kind, prepare_store)

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

        names = [f"{kind}/{variant}" for kind in kinds for variant in common.STORE_VARIANTS]
        summary = common.rounds(names, args.repeat, run)
        results["runs"] = summary
        results["same_rows"] = common.compare_rows(summary, kinds, expected)

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
                profile_out=common.RESULTS / f"spool_ingest_{args.profile}.prof",
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
    results["load_avg_end"] = common.load_average()

    ratios: dict[str, float] = {}
    targets: list[dict[str, Any]] = []
    parse_rate = results["parse_only"]["msgs_per_s"]
    print(
        f"\nspool ingest, {args.n} x ~{results['avg_size_bytes']} bytes, batch "
        f"{args.batch_size}, median of {args.repeat} (min-max), msg/s:"
    )
    for kind in kinds:
        floor = summary[f"{kind}/floor"]["median"]
        for variant in common.STORE_VARIANTS:
            s = summary[f"{kind}/{variant}"]
            print(
                f"  {kind:10} {variant:12} {s['median']:8.1f}  ({s['min']:.1f}-{s['max']:.1f})"
                f"  {s['median'] / floor:5.2f} x floor"
            )
        ratios.update(common.floor_ratios(summary, kind, parse_rate))
        targets.append(
            common.target_line(
                f"{kind}: project / serial floor",
                ratios[f"{kind}_project_vs_floor"],
                TARGET_VS_FLOOR[kind],
            )
        )
    print(f"  parse-only (reported, no target): {parse_rate:8.1f}")
    rss_check = common.rss_target(rss, rss_sizes, "maxrss_kib", TARGET_RSS_RATIO)
    if rss_check is not None:
        ratios["rss_large_vs_small"] = rss_check["value"]
        targets.append(rss_check)
    common.print_ratios(ratios)
    targets += common.same_rows_targets(results["same_rows"])
    results["ratios"] = ratios
    results["targets"] = targets
    return common.finish_report(results, args.json)


if __name__ == "__main__":
    sys.exit(main())
