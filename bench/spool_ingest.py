"""Benchmark of the Haraka spool ingest: parse-only vs full ingest, and peak memory.

    .venv/bin/python bench/spool_ingest.py [--n 2000] [--rss-n 1000,10000] [--json PATH]

Generates N messages of about 20 KB (a third with one attachment) as Haraka spool pairs
(``<uuid>.eml`` + ``<uuid>.meta``) routed to a few users, then measures in one run:

(a) parse-only throughput: ``parse_message`` over the same bytes (already in memory);
(b) full ingest throughput (claim + read + parse + route + save + move, durable defaults:
    attachment files and destination directories fsynced) on SQLite and on a throw-away
    PostgreSQL started like the test suite's (``mail_pipeline_tests.fixtures.postgres``);
(c) peak RSS (``VmHWM`` of a child process that runs one ingest) for each size in
    ``--rss-n``.

Targets: full ingest >= 70 % of parse-only msgs/s on SQLite, >= 60 % on PostgreSQL, and
RSS(largest) <= 1.3 x RSS(smallest). Prints the figures and writes them as JSON (default
``bench/results/spool_ingest.json``).
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

from rss import peak_rss_kb  # bench/rss.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

USERS = [f"user{i}@bench.example" for i in range(5)]


def generate(spool: Path, n: int, seed: int = 1) -> None:
    """Write ``n`` spool pairs of about 20 KB into ``spool/inbox``."""
    from mail_pipeline_tests.fixtures.spool_files import make_raw, write_pair

    rng = random.Random(seed)
    for i in range(n):
        attachment = rng.randbytes(6000) if i % 3 == 0 else None
        rcpt = rng.sample(USERS, 2 if i % 4 == 0 else 1)
        raw = make_raw(
            i, to=", ".join(rcpt), attachment=attachment, pad_to=20000 - (8200 if attachment else 0)
        )
        write_pair(spool, raw, rcpt)


def clone(src: Path, dst: Path) -> None:
    """Copy a generated spool with hard links (the ingest renames, never writes, the files)."""
    shutil.copytree(src, dst, copy_function=os.link)


def parse_only(spool: Path) -> dict[str, float]:
    from mail_pipeline.mime import parse_message

    raws = [p.read_bytes() for p in sorted((spool / "inbox").glob("*.eml"))]
    start = time.perf_counter()
    for raw in raws:
        parse_message(raw, max_size=25 * 1024 * 1024)
    elapsed = time.perf_counter() - start
    return {"messages": len(raws), "seconds": elapsed, "msgs_per_s": len(raws) / elapsed}


def prepare_store(url: str) -> None:
    from mail_pipeline.storage.store import MailStore

    store = MailStore(url)
    store.upgrade()
    for i, address in enumerate(USERS):
        store.users.add(f"user{i}", address)
    store.dispose()


def run_ingest(url: str, spool: Path, attachments: Path, batch_size: int) -> dict[str, Any]:
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
        "seconds": elapsed,
        "msgs_per_s": result.found / elapsed,
        "batches": result.batches,
    }


def child(args: argparse.Namespace) -> None:
    """``--child``: one ingest, then print its figures and this process's peak RSS."""
    figures = run_ingest(args.url, Path(args.spool), Path(args.attachments), args.batch_size)
    figures["maxrss_kib"] = peak_rss_kb()  # VmHWM: ru_maxrss carries the parent's over exec
    print(json.dumps(figures))


def in_child(url: str, spool: Path, attachments: Path, batch_size: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            "--url",
            url,
            "--spool",
            str(spool),
            "--attachments",
            str(attachments),
            "--batch-size",
            str(batch_size),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="messages for the throughput runs")
    parser.add_argument("--rss-n", default="1000,10000", help="sizes for the RSS runs")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "spool_ingest.json"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--spool", help=argparse.SUPPRESS)
    parser.add_argument("--attachments", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.n <= 0 or args.batch_size <= 0:
        parser.error("--n and --batch-size must be positive")
    rss_sizes = sorted(int(x) for x in args.rss_n.split(",") if x.strip())

    from mail_pipeline_tests.fixtures.postgres import PostgresServer

    work = Path(tempfile.mkdtemp(prefix="spool-bench-"))
    work.chmod(0o755)  # the PostgreSQL server runs as the postgres user
    pg = PostgresServer(work / "pg")
    results: dict[str, Any] = {"n": args.n, "batch_size": args.batch_size}
    try:
        print(f"generating {args.n} messages ...", flush=True)
        template = work / "template"
        generate(template, args.n)
        results["avg_size_bytes"] = (
            sum(p.stat().st_size for p in (template / "inbox").glob("*.eml")) // args.n
        )

        parse = parse_only(template)
        results["parse_only"] = parse
        print(f"parse-only:        {parse['msgs_per_s']:8.0f} msg/s", flush=True)

        sqlite_url = f"sqlite:///{work / 'bench.db'}"
        prepare_store(sqlite_url)
        clone(template, work / "spool-sqlite")
        results["sqlite"] = run_ingest(
            sqlite_url, work / "spool-sqlite", work / "att-sqlite", args.batch_size
        )
        print(f"ingest SQLite:     {results['sqlite']['msgs_per_s']:8.0f} msg/s", flush=True)

        pg.start()
        pg_url = pg.url(pg.create_database())
        prepare_store(pg_url)
        clone(template, work / "spool-pg")
        results["postgresql"] = run_ingest(
            pg_url, work / "spool-pg", work / "att-pg", args.batch_size
        )
        print(f"ingest PostgreSQL: {results['postgresql']['msgs_per_s']:8.0f} msg/s", flush=True)

        rss: dict[str, Any] = {}
        for size in rss_sizes:
            spool = work / f"spool-rss-{size}"
            generate(spool, size, seed=size)
            url = f"sqlite:///{work / f'rss-{size}.db'}"
            prepare_store(url)
            figures = in_child(url, spool, work / f"att-rss-{size}", args.batch_size)
            rss[str(size)] = figures
            print(
                f"RSS n={size:<6}      {figures['maxrss_kib'] / 1024:8.1f} MiB "
                f"({figures['msgs_per_s']:.0f} msg/s)",
                flush=True,
            )
        results["rss"] = rss
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)

    ratios = {
        "sqlite_vs_parse": results["sqlite"]["msgs_per_s"] / parse["msgs_per_s"],
        "postgresql_vs_parse": results["postgresql"]["msgs_per_s"] / parse["msgs_per_s"],
    }
    if len(rss_sizes) >= 2:
        small, large = str(rss_sizes[0]), str(rss_sizes[-1])
        ratios["rss_large_vs_small"] = rss[large]["maxrss_kib"] / rss[small]["maxrss_kib"]
    targets = {
        "sqlite_vs_parse >= 0.70": ratios["sqlite_vs_parse"] >= 0.70,
        "postgresql_vs_parse >= 0.60": ratios["postgresql_vs_parse"] >= 0.60,
    }
    if "rss_large_vs_small" in ratios:
        targets["rss_large_vs_small <= 1.3"] = ratios["rss_large_vs_small"] <= 1.3
    results["ratios"] = ratios
    results["targets_met"] = targets
    for name, value in ratios.items():
        print(f"{name:24} {value:6.2f}")
    for name, ok in targets.items():
        print(f"target {name}: {'met' if ok else 'NOT met'}")
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
