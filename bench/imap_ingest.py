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

from floor import ImapLogin, imap_floor, stored_rows  # bench/, beside this script
from profile_split import print_split, profiled
from rounds import interleave, load_average, print_targets, target_line
from rss import peak_rss_kb

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SECRET = "a passphrase for the imap ingest benchmark"
TARGET_VS_MBSYNC_NO_FSYNC = {"sqlite": 1.0, "postgresql": 0.8}
TARGET_RSS_RATIO = 1.3
STORE_VARIANTS = ("floor", "floor-2proc", "project")

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

    if args.profile_out:
        figures, split = profiled(once, Path(args.profile_out))
        figures["profile"] = split
    else:
        figures = once()
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
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--url", url]
    argv += ["--username", username, "--attachments", attachments]
    argv += ["--batch-size", str(batch_size), "--login", json.dumps(login.__dict__)]
    if profile_out is not None:
        argv += ["--profile-out", str(profile_out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)
    shutil.rmtree(attachments, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} child failed: {done.stderr.strip()[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


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
    return int(user.id)


class Stores:
    """A migrated template store per kind (the benchmark user and its IMAP config), and
    fresh copies of it for each run."""

    def __init__(self, work: Path, pg: Any, server: Any, username: str, password: str) -> None:
        self.work, self.pg, self.server = work, pg, server
        self.username, self.password = username, password
        self.templates: dict[str, str] = {}
        self.user_ids: dict[str, int] = {}
        self._count = 0

    def add(self, kind: str) -> None:
        """Make the template of ``kind`` ("sqlite" or "postgresql")."""
        if kind == "sqlite":
            path = self.work / "template.db"
            url = f"sqlite:///{path}"
            self.templates[kind] = str(path)
        else:
            name = self.pg.create_database()
            url = self.pg.url(name)
            self.templates[kind] = name
        self.user_ids[kind] = new_store(url, self.server, self.username, self.password)

    def fresh(self, kind: str) -> str:
        """Return the URL of a new copy of the template of ``kind``."""
        self._count += 1
        if kind == "sqlite":
            path = self.work / f"run-{self._count}.db"
            shutil.copyfile(self.templates[kind], path)
            return f"sqlite:///{path}"
        return str(self.pg.url(self.pg.create_database(template=self.templates[kind])))


# --- main ------------------------------------------------------------------------------------


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="messages of the throughput runs")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument(
        "--rss-sizes",
        default="1000,10000",
        help="mailbox sizes for the RSS comparison (default 1000,10000; '' for none)",
    )
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "results" / "imap_ingest.json"
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="sqlite",
        choices=("sqlite", "postgresql"),
        help="add one project ingest under cProfile (default store: sqlite)",
    )
    parser.add_argument("--child", choices=STORE_VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--username", help=argparse.SUPPRESS)
    parser.add_argument("--attachments", help=argparse.SUPPRESS)
    parser.add_argument("--login", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    if args.n <= 0 or args.batch_size <= 0 or args.repeat <= 0:
        parser.error("--n, --batch-size and --repeat must be positive")
    kinds = [k.strip() for k in args.stores.split(",") if k.strip()]
    if not kinds or any(k not in TARGET_VS_MBSYNC_NO_FSYNC for k in kinds):
        parser.error("--stores takes sqlite and/or postgresql")
    rss_sizes = sorted(int(x) for x in args.rss_sizes.split(",") if x.strip())

    from mail_pipeline_tests.fixtures.dovecot import DovecotServer
    from mail_pipeline_tests.fixtures.postgres import PostgresServer

    work = Path(tempfile.mkdtemp(prefix="mp-bench-imap-"))
    os.chmod(work, 0o755)
    dovecot = DovecotServer()
    postgres = PostgresServer(work / "pg")
    report: dict[str, Any] = {
        "n": args.n,
        "batch_size": args.batch_size,
        "repeat": args.repeat,
        "load_avg_start": load_average(),
    }
    print(f"load average at start: {report['load_avg_start']}", flush=True)
    try:
        dovecot.start()
        if "postgresql" in kinds:
            postgres.start()
        messages = make_messages(max([args.n, *rss_sizes]))
        corpus = messages[: args.n]
        report["avg_message_bytes"] = sum(map(len, corpus)) // len(corpus)

        user = dovecot.new_user()
        report["append_seconds"] = fill_mailbox(dovecot, user.username, corpus)
        stores = Stores(work, postgres, dovecot, user.username, user.password)
        for kind in kinds:
            stores.add(kind)

        def login_for(kind: str) -> ImapLogin:
            return ImapLogin(
                dovecot.host,
                dovecot.imaps_port,
                user.username,
                user.password,
                str(dovecot.ca_cert_path),
                stores.user_ids.get(kind, 0),
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
        names += [f"{kind}/{variant}" for kind in kinds for variant in STORE_VARIANTS]
        print(f"{args.repeat} interleaved rounds of {', '.join(names)}", flush=True)
        summary = interleave(names, args.repeat, run, lambda line: print(line, flush=True))
        report["runs"] = summary

        same: dict[str, bool] = {}
        for kind in kinds:
            floor_rows = stored_rows(summary[f"{kind}/floor"]["runs"][0]["url"])
            project_rows = stored_rows(summary[f"{kind}/project"]["runs"][0]["url"])
            same[kind] = floor_rows == project_rows and len(floor_rows) == args.n
            print(f"{kind}: floor and project stored the same {len(floor_rows)} rows: {same[kind]}")
        report["same_rows"] = same

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
                profile_out=ROOT / "bench" / "results" / f"imap_ingest_{args.profile}.prof",
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
    report["load_avg_end"] = load_average()

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
    print(f"  parse-only (reported, no target): {report['parse_only']['msgs_per_s']:8.1f}")
    ratios: dict[str, float] = {"mbsync_fsync_no_vs_fsync": no_fsync / mbsync}
    targets: list[dict[str, Any]] = []
    for kind in kinds:
        project = summary[f"{kind}/project"]["median"]
        ratios[f"{kind}_project_vs_mbsync"] = project / mbsync
        ratios[f"{kind}_project_vs_mbsync_fsync_no"] = project / no_fsync
        ratios[f"{kind}_project_vs_floor"] = project / summary[f"{kind}/floor"]["median"]
        ratios[f"{kind}_project_vs_floor_2proc"] = (
            project / summary[f"{kind}/floor-2proc"]["median"]
        )
        ratios[f"{kind}_project_vs_parse_only"] = project / report["parse_only"]["msgs_per_s"]
        targets.append(
            target_line(
                f"{kind}: project / mbsync FSync no",
                project / no_fsync,
                TARGET_VS_MBSYNC_NO_FSYNC[kind],
            )
        )
    if len(rss_sizes) >= 2:
        small, large = str(rss_sizes[0]), str(rss_sizes[-1])
        ratio = rss[large]["max_rss_kb"] / rss[small]["max_rss_kb"]
        ratios["rss_large_vs_small"] = ratio
        targets.append(
            target_line(f"peak RSS n={large} / n={small}", ratio, TARGET_RSS_RATIO, at_most=True)
        )
    for kind, ok in report["same_rows"].items():
        targets.append(target_line(f"{kind}: floor rows == project rows", float(ok), 1.0))
    for name, value in ratios.items():
        print(f"  {name:36} {value:6.2f}")
    report["ratios"] = ratios
    report["targets"] = targets
    print_targets(targets)
    if "profile" in report:
        print_split(
            f"profile of one project ingest ({report['profile']['store']}, "
            f"{report['profile']['msgs_per_s']:.0f} msg/s under cProfile)",
            report["profile"]["profile"],
        )
    print(f"\nload average: start {report['load_avg_start']}, end {report['load_avg_end']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"written {args.json}")
    return 0 if all(t["met"] for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
