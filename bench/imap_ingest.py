"""Benchmark of the IMAP ingest path against a private Dovecot, in one run.

Measures, over the same N messages (~20 KB each; a third with one attachment, a fifth with an
8-bit iso-8859-1 text part), appended with MULTIAPPEND to a fresh Dovecot mailbox:

(a) mbsync (isync) pulling the mailbox into a Maildir over IMAPS: the reference for raw
    transfer speed;
(b) parse-only throughput of :func:`mail_pipeline.mime.parse_message`;
(c) the full ingest (:meth:`MailboxFetcher.fetch_user`: fetch + parse + save, attachments
    fsynced as in production) on SQLite and on PostgreSQL, each in a child process;
(d) the peak RSS of a full ingest (SQLite) of 1,000 and of 10,000 messages, each in a child
    process (``VmHWM``; ``ru_maxrss`` is recorded too, see :func:`peak_rss_kb`).

Targets: full ingest ≥ 0.5 × mbsync msgs/s and ≥ 70 % of parse-only msgs/s;
RSS(10k) ≤ 1.3 × RSS(1k).

Run from the repository root::

    .venv/bin/python bench/imap_ingest.py             # N = 1,000, RSS at 1k and 10k
    .venv/bin/python bench/imap_ingest.py --n 300 --rss-sizes 300,1000   # a quick run

Results go to ``--json`` (default ``bench/results/imap_ingest.json``, git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rss import peak_rss_kb  # bench/rss.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SECRET = "a passphrase for the imap ingest benchmark"
TARGET_VS_MBSYNC = 0.5
TARGET_VS_PARSE = 0.7
TARGET_RSS_RATIO = 1.3

_TEXT = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua ut enim ad minim veniam quis nostrud exercitation ullamco "
    "laboris nisi aliquip ex ea commodo consequat"
)
_WORDS = tuple(_TEXT.split())


# --- messages --------------------------------------------------------------------------------


def make_message(n: int, rng: random.Random, size: int = 20_000) -> bytes:
    """Return message ``n``: ~``size`` bytes; n % 3 == 0 has an attachment, n % 5 == 0 is 8-bit
    iso-8859-1 text."""
    eight_bit = n % 5 == 0
    attach = n % 3 == 0
    text_size = size // 2 if attach else size - 600
    words: list[str] = []
    length = 0
    while length < text_size:
        word = rng.choice(_WORDS)
        if eight_bit and rng.random() < 0.1:
            word = rng.choice(("café", "crème", "naïve", "über", "señor", "façade"))
        words.append(word)
        length += len(word) + 1
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    body_text = "\r\n".join(lines) + "\r\n"
    charset = "iso-8859-1" if eight_bit else "us-ascii"
    body = body_text.encode(charset)
    headers = (
        f"From: Sender {n % 17} <sender{n % 17}@example.net>\r\n"
        f"To: Alice <alice@example.org>, team{n % 7}@example.org\r\n"
        f"Cc: carol@example.org\r\n"
        f"Subject: benchmark message {n} {'café' if eight_bit else ''}\r\n"
        f"Date: Tue, 01 Sep 2026 {n % 24:02d}:{n % 60:02d}:00 +0200\r\n"
        f"Message-ID: <bench-{n}@example.net>\r\n"
        "MIME-Version: 1.0\r\n"
    )
    if eight_bit:
        headers = headers.replace("café", "=?iso-8859-1?q?caf=E9?=")
    if not attach:
        return (
            headers.encode()
            + f"Content-Type: text/plain; charset={charset}\r\n"
            f"Content-Transfer-Encoding: {'8bit' if eight_bit else '7bit'}\r\n\r\n".encode()
            + body
        )
    import base64

    blob = rng.randbytes(size // 2 * 3 // 4)
    encoded = base64.encodebytes(blob).replace(b"\n", b"\r\n")
    return (
        headers.encode()
        + b'Content-Type: multipart/mixed; boundary="BOUNDARY"\r\n\r\n'
        + b"--BOUNDARY\r\n"
        + f"Content-Type: text/plain; charset={charset}\r\n"
        f"Content-Transfer-Encoding: {'8bit' if eight_bit else '7bit'}\r\n\r\n".encode()
        + body
        + b"--BOUNDARY\r\nContent-Type: application/octet-stream\r\n"
        + f'Content-Disposition: attachment; filename="data-{n}.bin"\r\n'.encode()
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + encoded
        + b"--BOUNDARY--\r\n"
    )


def make_messages(count: int, seed: int = 1) -> list[bytes]:
    """The benchmark corpus (deterministic)."""
    rng = random.Random(seed)
    return [make_message(n, rng) for n in range(count)]


def fill_mailbox(server: Any, username: str, messages: list[bytes]) -> float:
    """MULTIAPPEND ``messages`` to INBOX of ``username``; return the seconds it took."""
    started = time.perf_counter()
    with server.client(username) as client:
        for i in range(0, len(messages), 500):
            client.multiappend("INBOX", messages[i : i + 500])
    return time.perf_counter() - started


# --- (a) mbsync ------------------------------------------------------------------------------


def run_mbsync(server: Any, username: str, password: str, work: Path) -> float:
    """Pull INBOX of ``username`` into a fresh Maildir with mbsync over IMAPS; return seconds."""
    maildir = work / "maildir"
    shutil.rmtree(maildir, ignore_errors=True)
    maildir.mkdir(parents=True)
    rc = work / "mbsyncrc"
    rc.write_text(
        f"IMAPAccount bench\nHost localhost\nPort {server.imaps_port}\nUser {username}\n"
        f"Pass {password}\nSSLType IMAPS\nCertificateFile {server.ca_cert_path}\n"
        "AuthMechs LOGIN\n\n"
        "IMAPStore remote\nAccount bench\n\n"
        f"MaildirStore local\nPath {maildir}/\nInbox {maildir}/INBOX\n\n"
        "Channel pull\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\n"
        "Sync Pull\nSyncState *\n"
    )
    started = time.perf_counter()
    done = subprocess.run(
        ["mbsync", "-q", "-c", str(rc), "pull"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"mbsync failed: {done.stderr.strip()}")
    return seconds


def count_maildir(work: Path) -> int:
    return sum(len(os.listdir(work / "maildir" / "INBOX" / sub)) for sub in ("cur", "new"))


# --- (b) parse-only --------------------------------------------------------------------------


def parse_only(messages: list[bytes]) -> float:
    """Parse every message; return the seconds (best of two passes, the first warms up)."""
    from mail_pipeline.mime import parse_message

    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        for raw in messages:
            parse_message(raw)
        best = min(best, time.perf_counter() - started)
    return best


# --- (c, d) one ingest in a child process ----------------------------------------------------


def child_ingest(url: str, username: str, attachments: str, batch_size: int) -> dict[str, Any]:
    """Run one full ingest in this process (the child); return timing, counters and RSS."""
    from mail_pipeline.intake.imap.config import EmailConfigManager
    from mail_pipeline.intake.imap.fetcher import MailboxFetcher
    from mail_pipeline.storage.attachments import AttachmentStorage
    from mail_pipeline.storage.save_service import EmailSaveService
    from mail_pipeline.storage.store import MailStore

    store = MailStore(url)
    fetcher = MailboxFetcher(
        store,
        EmailSaveService(store, AttachmentStorage(attachments)),
        EmailConfigManager(store, SECRET),
        batch_size=batch_size,
    )
    rss_before = peak_rss_kb()
    started = time.perf_counter()
    result = fetcher.fetch_user(username)
    seconds = time.perf_counter() - started
    store.dispose()
    if not result.ok:
        raise RuntimeError(result.error)
    c = result.counters
    return {
        "seconds": seconds,
        "fetched": c.fetched,
        "saved": c.saved,
        "failed": c.failed,
        "duplicates": c.duplicate,
        "rss_before_kb": rss_before,
        "max_rss_kb": peak_rss_kb(),
        "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def ingest_in_child(
    url: str, username: str, work: Path, batch_size: int, profile: bool = False
) -> dict[str, Any]:
    """Run :func:`child_ingest` in a fresh Python process and return its figures."""
    attachments = tempfile.mkdtemp(prefix="att-", dir=work)
    argv = [sys.executable]
    if profile:
        argv += ["-m", "cProfile", "-s", "cumulative"]
    argv += [str(Path(__file__).resolve()), "--child", url, username, attachments, str(batch_size)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ingest child failed: {done.stderr.strip()[-2000:]}")
    if profile:
        print(done.stdout[:8000])
    line = next(x for x in done.stdout.splitlines() if x.startswith("{"))
    figures: dict[str, Any] = json.loads(line)
    shutil.rmtree(attachments, ignore_errors=True)
    return figures


def new_store(url: str, server: Any, username: str, password: str) -> None:
    """Migrate the store at ``url`` and give it a user with an IMAPS config for ``username``."""
    from mail_pipeline.intake.imap.config import EmailConfigManager
    from mail_pipeline.storage.store import MailStore

    store = MailStore(url)
    store.upgrade()
    user = store.users.add(username, f"{username}@example.org")
    EmailConfigManager(store, SECRET).update_fetch_config(
        user.id,
        {
            "imap_config": {
                "imap_host": server.host,
                "imap_ssl_port": server.imaps_port,
                "security": "ssl",
                "username": username,
                "password": password,
                "ca_file": str(server.ca_cert_path),
            },
            "filter_config": {"folders": ["INBOX"], "max_age_days": None},
        },
    )
    store.dispose()


# --- main ------------------------------------------------------------------------------------


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="messages for (a)-(c)")
    parser.add_argument(
        "--rss-sizes",
        default="1000,10000",
        help="two mailbox sizes for the RSS comparison (default 1000,10000)",
    )
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "results" / "imap_ingest.json"
    )
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of the SQLite ingest child"
    )
    args = parser.parse_args(argv)
    small, large = (int(x) for x in args.rss_sizes.split(","))

    from mail_pipeline_tests.fixtures.dovecot import DovecotServer
    from mail_pipeline_tests.fixtures.postgres import PostgresServer

    work = Path(tempfile.mkdtemp(prefix="mp-bench-imap-"))
    os.chmod(work, 0o755)
    dovecot = DovecotServer()
    postgres = PostgresServer(work / "pg")
    report: dict[str, Any] = {"n": args.n, "batch_size": args.batch_size}
    try:
        dovecot.start()
        postgres.start()
        messages = make_messages(max(args.n, large))
        corpus = messages[: args.n]
        report["avg_message_bytes"] = sum(map(len, corpus)) // len(corpus)

        user = dovecot.new_user()
        report["append_seconds"] = fill_mailbox(dovecot, user.username, corpus)

        mbsync_s = run_mbsync(dovecot, user.username, user.password, work)
        assert count_maildir(work) == args.n, "mbsync did not pull every message"
        report["mbsync"] = {"seconds": mbsync_s, "msgs_per_s": rate(args.n, mbsync_s)}

        parse_s = parse_only(corpus)
        report["parse_only"] = {"seconds": parse_s, "msgs_per_s": rate(args.n, parse_s)}

        sqlite_url = f"sqlite:///{work / 'ingest.db'}"
        new_store(sqlite_url, dovecot, user.username, user.password)
        sq = ingest_in_child(sqlite_url, user.username, work, args.batch_size, args.profile)
        assert sq["saved"] == args.n, sq
        sq["msgs_per_s"] = rate(args.n, sq["seconds"])
        report["full_sqlite"] = sq

        pg_url = postgres.url(postgres.create_database())
        new_store(pg_url, dovecot, user.username, user.password)
        pg = ingest_in_child(pg_url, user.username, work, args.batch_size)
        assert pg["saved"] == args.n, pg
        pg["msgs_per_s"] = rate(args.n, pg["seconds"])
        report["full_postgresql"] = pg

        rss: dict[str, Any] = {}
        for size in (small, large):
            rss_user = dovecot.new_user()
            fill_mailbox(dovecot, rss_user.username, messages[:size])
            url = f"sqlite:///{work / f'rss-{size}.db'}"
            new_store(url, dovecot, rss_user.username, rss_user.password)
            figures = ingest_in_child(url, rss_user.username, work, args.batch_size)
            assert figures["saved"] == size, figures
            figures["msgs_per_s"] = rate(size, figures["seconds"])
            rss[str(size)] = figures
        report["rss"] = rss

        slowest = min(sq["msgs_per_s"], pg["msgs_per_s"])
        ratios = {
            "full_sqlite_vs_mbsync": sq["msgs_per_s"] / report["mbsync"]["msgs_per_s"],
            "full_postgresql_vs_mbsync": pg["msgs_per_s"] / report["mbsync"]["msgs_per_s"],
            "full_sqlite_vs_parse": sq["msgs_per_s"] / report["parse_only"]["msgs_per_s"],
            "full_postgresql_vs_parse": pg["msgs_per_s"] / report["parse_only"]["msgs_per_s"],
            "rss_large_vs_small": rss[str(large)]["max_rss_kb"] / rss[str(small)]["max_rss_kb"],
        }
        report["ratios"] = ratios
        report["targets_met"] = {
            "vs_mbsync": slowest / report["mbsync"]["msgs_per_s"] >= TARGET_VS_MBSYNC,
            "vs_parse": slowest / report["parse_only"]["msgs_per_s"] >= TARGET_VS_PARSE,
            "rss": ratios["rss_large_vs_small"] <= TARGET_RSS_RATIO,
        }
    finally:
        dovecot.close()
        try:
            postgres.stop()
        finally:
            shutil.rmtree(work, ignore_errors=True)

    print(
        f"messages: {args.n} x ~{report['avg_message_bytes']} bytes "
        f"(appended in {report['append_seconds']:.2f} s)"
    )
    for name in ("mbsync", "parse_only", "full_sqlite", "full_postgresql"):
        figures = report[name]
        print(f"  {name:16} {figures['seconds']:8.3f} s  {figures['msgs_per_s']:9.1f} msgs/s")
    for size, figures in report["rss"].items():
        print(
            f"  rss {size:>6} msgs   peak {figures['max_rss_kb'] / 1024:7.1f} MiB "
            f"(before fetch {figures['rss_before_kb'] / 1024:.1f} MiB, "
            f"{figures['msgs_per_s']:.1f} msgs/s)"
        )
    for name, value in report["ratios"].items():
        print(f"  {name:28} {value:6.2f}")
    for name, met in report["targets_met"].items():
        print(f"  target {name:10} {'met' if met else 'NOT met'}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.json}")
    return 0 if all(report["targets_met"].values()) else 1


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        print(json.dumps(child_ingest(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))))
        sys.exit(0)
    sys.exit(main())
