"""Benchmark of the IMAP ingest path against mbsync and its floor, in one run (issue 13).

Over the same N messages (~20 KB each; a third with one attachment, a fifth with an 8-bit
iso-8859-1 text part), appended with MULTIAPPEND to a private Dovecot's INBOX, measures in
interleaved rounds (median of ``--repeat``):

- ``mbsync`` (isync) pulling the mailbox into a fresh Maildir over IMAPS, with its default
  ``FSync yes`` and with ``FSync no``: the reference for raw transfer;
- ``floor``: the same fetch and storing work with no layers (:mod:`floor`: a plain imapclient
  loop of ``UID FETCH (BODY.PEEK[] INTERNALDATE)`` batches, ``parse_message``, attachment files
  with one ``syncfs`` per batch, bare ``sqlite3`` / ``psycopg2`` inserts of the same columns
  and the folder's cursor into the project's schema);
- ``floor-2proc``: the floor with the parsing in a second process, one batch ahead;
- ``project``: :meth:`MailboxFetcher.fetch_user` (sizes, batches, fetch ahead, parse, save
  with the cursor in one transaction; attachments fsynced as in production);

the stores on SQLite and on a throw-away PostgreSQL (``mail_pipeline_tests.fixtures``; it runs
with ``fsync=off``). Every floor and project run is a fresh child process (imports and set-up
outside the timer) on a fresh copy of a migrated store; the rows of the first floor and
project runs of each store are compared (they must be the same). Also reported, not a target:
parse-only throughput. Peak RSS (``VmHWM``) of a project ingest (SQLite) of each
``--rss-sizes`` mailbox, each in a child process.

Targets: project >= 1.0 x mbsync ``FSync no`` on SQLite, >= 0.8 x on PostgreSQL;
RSS(largest) <= 1.3 x RSS(smallest). ``--profile`` adds one project ingest under cProfile
(its fetch thread too), split by area (SQL/ORM, parse, file IO, IMAP, renames).

Run from the repository root::

    .venv/bin/python bench/imap_ingest.py             # N = 1,000, 3 rounds, RSS at 1k and 10k
    .venv/bin/python bench/imap_ingest.py --n 300 --repeat 1 --rss-sizes ""   # a quick run

Load averages at start and end are printed; results go to ``--json`` (default
``bench/results/imap_ingest.json``, git-ignored).
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

import common  # bench/, beside this script
from floor import ImapLogin, imap_floor
from rss import peak_rss_kb

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SECRET = "a passphrase for the imap ingest benchmark"
TARGET_VS_MBSYNC_NO_FSYNC = {"sqlite": 1.0, "postgresql": 0.8}
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


# --- mbsync ----------------------------------------------------------------------------------


def run_mbsync(server: Any, username: str, password: str, work: Path, *, fsync: bool) -> float:
    """Pull INBOX of ``username`` into a fresh Maildir with mbsync over IMAPS; return seconds.

    ``fsync=False`` adds the global ``FSync no`` (mbsync then never flushes its files).

    Raises:
        RuntimeError: mbsync failed, or did not pull every message.
    """
    maildir = work / "maildir"
    shutil.rmtree(maildir, ignore_errors=True)
    maildir.mkdir(parents=True)
    rc = work / "mbsyncrc"
    rc.write_text(
        ("" if fsync else "FSync no\n\n")
        + f"IMAPAccount bench\nHost localhost\nPort {server.imaps_port}\nUser {username}\n"
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
    """How many messages the last mbsync run left in its Maildir."""
    return sum(len(os.listdir(work / "maildir" / "INBOX" / sub)) for sub in ("cur", "new"))


# --- parse-only ------------------------------------------------------------------------------


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


# --- one floor or project run, in a child process --------------------------------------------


def run_project(url: str, username: str, attachments: str, batch_size: int) -> dict[str, Any]:
    """One :meth:`MailboxFetcher.fetch_user` of ``username``; return timing and counters.

    Raises:
        RuntimeError: the fetch reported an error.
    """
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
    started = time.perf_counter()
    result = fetcher.fetch_user(username)
    seconds = time.perf_counter() - started
    store.dispose()
    if not result.ok:
        raise RuntimeError(result.error)
    c = result.counters
    return {
        "messages": c.fetched,
        "deliveries": c.saved,
        "failed": c.failed,
        "duplicates": c.duplicate,
        "seconds": seconds,
        "msgs_per_s": c.fetched / seconds if seconds > 0 else 0.0,
    }


def warm_up(kind: str) -> None:
    """Import what ``kind`` uses and parse two messages, before the timer (the parser's first
    call compiles and imports lazily: the same cost for every kind)."""
    from mail_pipeline.mime import parse_message

    if kind == "project":
        import mail_pipeline.intake.imap.fetcher  # noqa: F401
    else:
        import imapclient  # noqa: F401
    rng = random.Random(99)
    parse_message(make_message(0, rng))
    parse_message(make_message(1, rng))


def child(args: argparse.Namespace) -> None:
    """``--child KIND``: one run, then print its figures and this process's peak RSS."""
    warm_up(args.child)
    rss_before = peak_rss_kb()

    def once() -> dict[str, Any]:
        if args.child == "project":
            return run_project(args.url, args.username, args.attachments, args.batch_size)
        login = ImapLogin(**json.loads(args.login))
        two = args.child == "floor-2proc"
        return imap_floor(
            args.url, login, Path(args.attachments), args.batch_size, parse_in_worker=two
        ).as_dict()

    figures = common.child_figures(once, args.profile_out)
    figures["rss_before_kb"] = rss_before
    figures["max_rss_kb"] = peak_rss_kb()  # VmHWM: ru_maxrss carries the parent's over exec
    figures["ru_maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(figures))


def in_child(
    kind: str,
    url: str,
    username: str,
    login: ImapLogin,
    work: Path,
    batch_size: int,
    profile_out: Path | None = None,
) -> dict[str, Any]:
    """Run one ``kind`` run in a fresh Python process and return its figures.

    Raises:
        RuntimeError: the child failed (its stderr's tail is in the message).
    """
    attachments = tempfile.mkdtemp(prefix="att-", dir=work)
    options = {"--url": url, "--username": username, "--attachments": attachments}
    options |= {"--batch-size": str(batch_size), "--login": json.dumps(login.__dict__)}
    try:
        return common.run_child(__file__, kind, options, profile_out)
    finally:
        shutil.rmtree(attachments, ignore_errors=True)


# --- stores ----------------------------------------------------------------------------------


def new_store(url: str, server: Any, username: str, password: str) -> int:
    """Migrate the store at ``url``, give it a user with an IMAPS config for ``username``;
    return the user's id."""
    from mail_pipeline.intake.imap.config import EmailConfigManager
    from mail_pipeline.storage.store import MailStore

    store = MailStore(url)
    store.upgrade()
    user = store.users.add(username, f"{username}@example.org")
    EmailConfigManager(store, SECRET).update_fetch_config(
        user.id, common.imaps_account(server, username, password)
    )
    store.dispose()
    return int(user.id)


# --- main ------------------------------------------------------------------------------------


def rate(count: int, seconds: float) -> float:
    """Return ``count / seconds`` (infinite for no time)."""
    return count / seconds if seconds > 0 else float("inf")


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of this script's options (and of its child runs)."""
    return common.ingest_parser(
        __doc__.splitlines()[0],
        n=1000,
        batch_size=100,
        rss_flag="--rss-sizes",
        json_name="imap_ingest.json",
        child_options=("--username", "--login"),
    )


def main(argv: list[str] | None = None) -> int:
    args = common.parse_ingest_args(build_parser(), argv)
    if args.child:
        child(args)
        return 0
    kinds, rss_sizes = args.kinds, args.rss_sizes

    from mail_pipeline_tests.fixtures.dovecot import DovecotServer
    from mail_pipeline_tests.fixtures.postgres import PostgresServer

    work = Path(tempfile.mkdtemp(prefix="mp-bench-imap-"))
    os.chmod(work, 0o755)
    dovecot = DovecotServer()
    postgres = PostgresServer(work / "pg")
    report = common.start_report(n=args.n, batch_size=args.batch_size, repeat=args.repeat)
    try:
        dovecot.start()
        if "postgresql" in kinds:
            postgres.start()
        messages = make_messages(max([args.n, *rss_sizes]))
        corpus = messages[: args.n]
        report["avg_message_bytes"] = sum(map(len, corpus)) // len(corpus)

        user = dovecot.new_user()
        report["append_seconds"] = fill_mailbox(dovecot, user.username, corpus)
        stores = common.TemplateStores(work, postgres)
        user_ids = {
            kind: stores.add(
                kind, lambda url: new_store(url, dovecot, user.username, user.password)
            )
            for kind in kinds
        }

        def login_for(kind: str) -> ImapLogin:
            return ImapLogin(
                dovecot.host,
                dovecot.imaps_port,
                user.username,
                user.password,
                str(dovecot.ca_cert_path),
                user_ids.get(kind, 0),
            )

        def run(name: str, index: int) -> dict[str, Any]:
            if name.startswith("mbsync"):
                seconds = run_mbsync(
                    dovecot, user.username, user.password, work, fsync=name == "mbsync"
                )
                if count_maildir(work) != args.n:
                    raise RuntimeError(f"{name} did not pull every message")
                return {"messages": args.n, "seconds": seconds, "msgs_per_s": rate(args.n, seconds)}
            kind, variant = name.split("/")
            url = stores.fresh(kind)
            figures = in_child(variant, url, user.username, login_for(kind), work, args.batch_size)
            if figures["messages"] != args.n or figures["deliveries"] != args.n:
                raise RuntimeError(f"{name}: stored {figures} instead of {args.n} messages")
            figures["url"] = url
            return figures

        names = ["mbsync", "mbsync-fsync-no"]
        names += [f"{kind}/{variant}" for kind in kinds for variant in common.STORE_VARIANTS]
        summary = common.rounds(names, args.repeat, run)
        report["runs"] = summary
        report["same_rows"] = common.compare_rows(summary, kinds, args.n)

        parse_s = parse_only(corpus)
        report["parse_only"] = {"seconds": parse_s, "msgs_per_s": rate(args.n, parse_s)}

        if args.profile:
            figures = in_child(
                "project",
                stores.fresh(args.profile),
                user.username,
                login_for(args.profile),
                work,
                args.batch_size,
                profile_out=common.RESULTS / f"imap_ingest_{args.profile}.prof",
            )
            report["profile"] = {"store": args.profile, **figures}

        rss: dict[str, Any] = {}
        for size in rss_sizes:
            rss_user = dovecot.new_user()
            fill_mailbox(dovecot, rss_user.username, messages[:size])
            url = f"sqlite:///{work / f'rss-{size}.db'}"
            new_store(url, dovecot, rss_user.username, rss_user.password)
            figures = in_child(
                "project", url, rss_user.username, login_for("sqlite"), work, args.batch_size
            )
            if figures["deliveries"] != size:
                raise RuntimeError(f"RSS run of {size}: {figures}")
            rss[str(size)] = figures
            print(
                f"RSS n={size:<6} peak {figures['max_rss_kb'] / 1024:7.1f} MiB "
                f"(before fetch {figures['rss_before_kb'] / 1024:.1f} MiB, "
                f"{figures['msgs_per_s']:.1f} msg/s)",
                flush=True,
            )
        report["rss"] = rss
    finally:
        dovecot.close()
        try:
            postgres.stop()
        finally:
            shutil.rmtree(work, ignore_errors=True)
    report["load_avg_end"] = common.load_average()

    mbsync = summary["mbsync"]["median"]
    no_fsync = summary["mbsync-fsync-no"]["median"]
    print(
        f"\nIMAP ingest, {args.n} x ~{report['avg_message_bytes']} bytes, batch "
        f"{args.batch_size}, median of {args.repeat} (min-max), msg/s; x mbsync (FSync yes / no)"
    )
    for name in names:
        s = summary[name]
        print(
            f"  {name:24} {s['median']:8.1f}  ({s['min']:.1f}-{s['max']:.1f})"
            f"  {s['median'] / mbsync:5.2f} / {s['median'] / no_fsync:5.2f}"
        )
    parse_rate = report["parse_only"]["msgs_per_s"]
    print(f"  parse-only (reported, no target): {parse_rate:8.1f}")
    ratios: dict[str, float] = {"mbsync_fsync_no_vs_fsync": no_fsync / mbsync}
    targets: list[dict[str, Any]] = []
    for kind in kinds:
        project = summary[f"{kind}/project"]["median"]
        ratios[f"{kind}_project_vs_mbsync"] = project / mbsync
        ratios[f"{kind}_project_vs_mbsync_fsync_no"] = project / no_fsync
        ratios.update(common.floor_ratios(summary, kind, parse_rate))
        targets.append(
            common.target_line(
                f"{kind}: project / mbsync FSync no",
                project / no_fsync,
                TARGET_VS_MBSYNC_NO_FSYNC[kind],
            )
        )
    rss_check = common.rss_target(rss, rss_sizes, "max_rss_kb", TARGET_RSS_RATIO)
    if rss_check is not None:
        ratios["rss_large_vs_small"] = rss_check["value"]
        targets.append(rss_check)
    targets += common.same_rows_targets(report["same_rows"])
    common.print_ratios(ratios)
    report["ratios"] = ratios
    report["targets"] = targets
    return common.finish_report(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
