"""Benchmark of one ``email_fetch_job`` tick over many IMAP mailboxes (issue 5, "Speed").

In one run, against a private Dovecot with ``--users`` mailboxes (each a store user with a
valid IMAPS config) and an empty Haraka spool, after a first tick has synced every mailbox:

(a) a tick with NO new mail;
(b) a tick with ``--new-per-user`` new messages in every mailbox (APPENDed before the tick,
    5-20 KB each, a third with an attachment);

for each executor in ``--executors``:

- ``in_process``: ``email_fetch_job`` itself (the job's executor), run with
  ``execute_in_process`` on a persistent instance;
- ``forkserver``: the same graph (``mail_pipeline.defs.fetch.jobs.email_fetch``) as a job with the
  multiprocess executor, forkserver start method and ``max_concurrent: 4``, run with
  ``dg.execute_job(dg.reconstructable(...))`` on the same persistent instance.

Both use the resources of the code location (``build_resources()``, production defaults:
attachments fsynced) over a temporary ``DAGSTER_HOME``. The reference without Dagster, measured
in the same rounds, is the core loop: ``MailboxFetcher.fetch_user`` for every user in one
process, under one IMAP EmailTask (the same per-mailbox bookkeeping the ops do).

Tick seconds are the WALL time of the execute call (run creation, resource set-up, every step,
run end); the run's own RUN_START -> RUN_SUCCESS span (event timestamps) is reported beside it.
Every tick is checked: run success, every mailbox fetched without error, and exactly the
expected number of messages stored. Rounds interleave the core loop and the executors so that
load from other processes on the machine spreads over all of them; the median of
``--repeat`` rounds is reported with min-max. Each executor's first tick after the sync
(``cold``: first imports, the forkserver start) is reported separately.

Target: the no-new-mail tick of 200 users <= 30 s end to end with the in-process executor.
When it is missed (or with ``--profile``), one extra in-process idle tick runs under cProfile
and the time is split into Dagster machinery, IMAP and the store.

Run from the repository root::

    .venv/bin/python bench/fetch_tick.py                          # 200 users, SQLite store
    .venv/bin/python bench/fetch_tick.py --store postgresql       # throw-away PostgreSQL
    .venv/bin/python bench/fetch_tick.py --users 20 --repeat 1    # a quick run

Results go to ``--json`` (default ``bench/results/fetch_tick.json``, git-ignored).
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import json
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from mail_pipeline.defs.fetch.jobs import email_fetch, email_fetch_job  # noqa: E402
from mail_pipeline.defs.resources import build_resources  # noqa: E402
from mail_pipeline.defs.tags import JOB_TAG  # noqa: E402

SECRET = "a passphrase for the fetch tick benchmark"
TARGET_IDLE_SECONDS = 30.0
TARGET_USERS = 200
MAX_CONCURRENT = 4
EXECUTORS = ("in_process", "forkserver")


def email_fetch_forkserver_job() -> dg.JobDefinition:
    """The forkserver variant of the fetch job: same graph, same resources (from the
    environment, as in the code location), multiprocess executor. A module-level function so
    that ``reconstructable`` can build it again in the step processes."""
    return email_fetch.to_job(
        name="email_fetch_job_forkserver",
        description="email_fetch with the multiprocess executor (forkserver, max_concurrent 4).",
        executor_def=dg.multiprocess_executor.configured(
            {
                "max_concurrent": MAX_CONCURRENT,
                "start_method": {"forkserver": {}},
            }
        ),
        resource_defs=build_resources(),
        tags={JOB_TAG: "email_fetch"},
    )


# --- messages and mailboxes ------------------------------------------------------------------

_WORDS = (
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
)


def make_message(tag: str, n: int, rng: random.Random) -> bytes:
    """Return a message of 5-20 KB with Message-ID ``<tick-{tag}-{n}@...>``; every third one
    carries a ~3 KB attachment."""
    size = rng.randint(5_000, 20_000)
    attach = n % 3 == 0
    text_size = size - 600 - (4_000 if attach else 0)
    words: list[str] = []
    length = 0
    while length < text_size:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    body = "\r\n".join(" ".join(words[i : i + 12]) for i in range(0, len(words), 12)) + "\r\n"
    headers = (
        f"From: Sender {n % 17} <sender{n % 17}@example.net>\r\n"
        "To: someone@example.org\r\n"
        f"Subject: fetch tick {tag} message {n}\r\n"
        f"Date: Tue, 01 Sep 2026 {n % 24:02d}:{n % 60:02d}:00 +0200\r\n"
        f"Message-ID: <tick-{tag}-{n}@bench.example>\r\n"
        "MIME-Version: 1.0\r\n"
    )
    if not attach:
        return (headers + "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + body).encode()
    blob = base64.encodebytes(rng.randbytes(3_000)).replace(b"\n", b"\r\n")
    return (
        headers.encode()
        + b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
        + b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        + body.encode()
        + b"--B\r\nContent-Type: application/octet-stream\r\n"
        + f'Content-Disposition: attachment; filename="f{n}.bin"\r\n'.encode()
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + blob
        + b"--B--\r\n"
    )


def append_new_mail(dovecot: Any, logins: list[str], tag: str, per_user: int) -> float:
    """MULTIAPPEND ``per_user`` new messages to every mailbox; return the seconds it took."""
    rng = random.Random(tag)
    batch = [make_message(tag, n, rng) for n in range(per_user)]
    started = time.perf_counter()
    for login in logins:
        with dovecot.client(login) as client:
            client.multiappend("INBOX", batch)
    return time.perf_counter() - started


def add_users(store: Any, dovecot: Any, count: int) -> tuple[list[int], list[str]]:
    """Create ``count`` store users, each with a fresh Dovecot mailbox (IMAPS config)."""
    from mail_pipeline.intake.imap.config import EmailConfigManager

    configs = EmailConfigManager(store, SECRET)
    ids: list[int] = []
    logins: list[str] = []
    for i in range(count):
        mail_user = dovecot.new_user()
        user = store.users.add(f"tick{i:04d}", f"tick{i:04d}@example.org")
        configs.update_fetch_config(
            user.id,
            {
                "imap_config": {
                    "imap_host": "127.0.0.1",
                    "imap_ssl_port": dovecot.imaps_port,
                    "username": mail_user.username,
                    "password": mail_user.password,
                    "use_ssl": True,
                    "ca_file": str(dovecot.ca_cert_path),
                },
                "filter_config": {"folders": ["INBOX"], "max_age_days": None},
            },
        )
        ids.append(user.id)
        logins.append(mail_user.username)
    return ids, logins


# --- one tick --------------------------------------------------------------------------------


@dataclass
class Tick:
    """One measured tick (a job run, or one pass of the core loop)."""

    kind: str  # "idle" | "new" | "sync" | "cold" | "profile"
    runner: str  # "core" | executor name
    seconds: float  # wall time of the execute call / of the loop
    run_seconds: float | None  # RUN_START -> RUN_SUCCESS from the run's events
    saved: int
    steps: int = 0
    run_id: str = ""


def _run_events(
    instance: dg.DagsterInstance, run_id: str
) -> tuple[float | None, int, dict[str, Any]]:
    """Return (RUN_START -> RUN_SUCCESS seconds, successful steps, close_imap_fetch metadata)."""
    start = end = None
    steps = 0
    close: dict[str, Any] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        if kind == "PIPELINE_START" or kind == "RUN_START":
            start = record.timestamp
        elif kind == "PIPELINE_SUCCESS" or kind == "RUN_SUCCESS":
            end = record.timestamp
        elif kind == "STEP_SUCCESS":
            steps += 1
        elif kind == "STEP_OUTPUT" and event.step_key == "close_imap_fetch":
            data = event.event_specific_data.metadata  # type: ignore[union-attr]
            close = {key: value.value for key, value in data.items()}
    span = end - start if start is not None and end is not None else None
    return span, steps, close


def job_tick(
    executor: str,
    instance: dg.DagsterInstance,
    store: Any,
    users: int,
    expect_saved: int,
    kind: str,
) -> Tick:
    """Run one tick of the fetch job with ``executor``, check it, and return its figures."""
    before = store.messages.count()
    started = time.perf_counter()
    if executor == "in_process":
        result = email_fetch_job.execute_in_process(
            resources=build_resources(), instance=instance, raise_on_error=False
        )
        seconds = time.perf_counter() - started
        success, run_id = result.success, result.run_id
    elif executor == "forkserver":
        with dg.execute_job(
            dg.reconstructable(email_fetch_forkserver_job), instance=instance, raise_on_error=False
        ) as executed:
            seconds = time.perf_counter() - started
            success, run_id = executed.success, executed.run_id
    else:
        raise ValueError(f"unknown executor {executor!r}")
    saved = store.messages.count() - before
    span, steps, close = _run_events(instance, run_id)
    if not success:
        raise RuntimeError(f"{executor} {kind} tick: run {run_id} failed")
    if close.get("mailboxes") != users or close.get("failed_mailboxes") != 0:
        raise RuntimeError(
            f"{executor} {kind} tick: mailboxes {close.get('mailboxes')}, "
            f"failed {close.get('failed_mailboxes')} (expected {users}, 0)"
        )
    if expect_saved >= 0 and saved != expect_saved:
        raise RuntimeError(f"{executor} {kind} tick: saved {saved}, expected {expect_saved}")
    return Tick(kind, executor, seconds, span, saved, steps, run_id)


def core_tick(
    store: Any, attachment_root: str, user_ids: list[int], expect_saved: int, kind: str
) -> Tick:
    """Fetch every mailbox with :class:`MailboxFetcher` in this process, under one IMAP task."""
    from mail_pipeline.intake.imap.config import EmailConfigManager
    from mail_pipeline.intake.imap.fetcher import MailboxFetcher
    from mail_pipeline.storage.attachments import AttachmentStorage
    from mail_pipeline.storage.save_service import EmailSaveService
    from mail_pipeline.storage.store import EmailSource, TaskStatus

    before = store.messages.count()
    started = time.perf_counter()
    fetcher = MailboxFetcher(
        store,
        EmailSaveService(store, AttachmentStorage(attachment_root)),
        EmailConfigManager(store, SECRET),
    )
    task = store.tasks.create(
        EmailSource.IMAP, status=TaskStatus.RUNNING, message="fetch tick benchmark (core loop)"
    )
    failed = [
        r.username
        for r in (fetcher.fetch_user(uid, task_id=task.task_id) for uid in user_ids)
        if not r.ok
    ]
    store.tasks.mark_completed(task.task_id)
    seconds = time.perf_counter() - started
    saved = store.messages.count() - before
    if failed:
        raise RuntimeError(f"core {kind} tick: failed mailboxes {failed[:5]}")
    if expect_saved >= 0 and saved != expect_saved:
        raise RuntimeError(f"core {kind} tick: saved {saved}, expected {expect_saved}")
    return Tick(kind, "core", seconds, None, saved)


# --- profile ---------------------------------------------------------------------------------

#: The op bodies of email_fetch (their cumulative times do not nest in one another).
_OPS = (
    "acquire_fetch_lock",
    "cleanup_stale_tasks_op",
    "plan_imap_fetch",
    "fetch_mailbox",
    "close_imap_fetch",
    "ingest_spool",
    "release_fetch_lock",
)

#: (label, file suffix, function names): cumulative times worth reading in a tick's profile.
_KEY_FUNCTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("op bodies (the 7 ops of email_fetch)", "mail_pipeline/defs/", _OPS),
    ("  fetch_mailbox op", "mail_pipeline/defs/imap/ops.py", ("fetch_mailbox",)),
    ("    TaskHeartbeat.beat (renewals)", "mail_pipeline/storage/heartbeat.py", ("beat",)),
    ("    MailboxFetcher.fetch_user", "mail_pipeline/intake/imap/fetcher.py", ("fetch_user",)),
    ("      imap connect (TCP+TLS+LOGIN)", "mail_pipeline/intake/imap/connection.py", ("connect",)),
    (
        "        build_ssl_context",
        "mail_pipeline/intake/imap/connection.py",
        ("build_ssl_context",),
    ),
    ("      EXAMINE (select_folder)", "imapclient/imapclient.py", ("select_folder",)),
    ("      UID SEARCH", "imapclient/imapclient.py", ("search",)),
    ("      LOGOUT/close", "mail_pipeline/intake/imap/connection.py", ("_close_quietly",)),
    (
        "      imap_fetch_config (decrypt)",
        "mail_pipeline/intake/imap/config.py",
        ("imap_fetch_config",),
    ),
    ("      sync_position", "mail_pipeline/storage/store/messages.py", ("sync_position",)),
    ("      update_sync", "mail_pipeline/storage/store/messages.py", ("update_sync",)),
    ("      update_fetch_time", "mail_pipeline/intake/imap/config.py", ("update_fetch_time",)),
    ("      _log_result (task log)", "mail_pipeline/intake/imap/fetcher.py", ("_log_result",)),
    ("  plan_imap_fetch op", "mail_pipeline/defs/imap/ops.py", ("plan_imap_fetch",)),
    ("  close_imap_fetch op", "mail_pipeline/defs/imap/ops.py", ("close_imap_fetch",)),
    ("SQLAlchemy Session.commit (all)", "sqlalchemy/orm/session.py", ("commit",)),
    ("Dagster: store_event (event log writes)", "event_log", ("store_event",)),
    ("Dagster: handle_new_event (all events)", "dagster/_core/instance/", ("handle_new_event",)),
    ("Dagster: IO manager handle_output", "io_manager", ("handle_output",)),
    ("Dagster: IO manager load_input", "io_manager", ("load_input",)),
)

#: Self time grouped by where the code lives (the groups do not overlap; they sum to the total).
_GROUPS = (
    ("dagster", ("/dagster/", "/dagster_shared/", "/dagster_pipes/")),
    ("sqlalchemy + sqlite3 + psycopg2", ("/sqlalchemy/", "sqlite3", "psycopg2", "/alembic/")),
    (
        "imap: imapclient/imaplib/ssl/socket",
        ("/imapclient/", "imaplib", "_ssl", "ssl.py", "socket"),
    ),
    ("pydantic", ("/pydantic", "pydantic_core")),
    ("mail_pipeline", ("/mail_pipeline/",)),
)


def _group_of(key: tuple[str, int, str]) -> str:
    text = f"{key[0]}:{key[2]}"
    for name, needles in _GROUPS:
        if any(needle in text for needle in needles):
            return name
    return "other (stdlib, builtins, ...)"


def profile_tick(instance: dg.DagsterInstance, store: Any, users: int, out: Path) -> dict[str, Any]:
    """Run one in-process idle tick under cProfile; return a breakdown (and save the .prof)."""
    profiler = cProfile.Profile()
    profiler.enable()
    tick = job_tick("in_process", instance, store, users, 0, "profile")
    profiler.disable()
    profiler.dump_stats(str(out))
    stats = pstats.Stats(profiler)
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total = max(ct for (_cc, _nc, _tt, ct, _callers) in table.values())
    groups: dict[str, float] = {}
    for key, (_cc, _nc, tt, _ct, _callers) in table.items():
        groups[_group_of(key)] = groups.get(_group_of(key), 0.0) + tt
    keys: dict[str, dict[str, float]] = {}
    for label, suffix, names in _KEY_FUNCTIONS:
        cum, calls = 0.0, 0
        for (path, _line, func), (_cc, nc, _tt, ct, _callers) in table.items():
            if suffix in path and func in names:
                cum += ct
                calls += nc
        keys[label] = {"seconds": cum, "calls": calls}
    top = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:15]
    return {
        "tick_seconds": tick.seconds,
        "profiled_total": total,
        "self_time_by_group": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
        "cumulative": keys,
        "top_self_time": [
            {
                "function": f"{Path(k[0]).name}:{k[1]}:{k[2]}",
                "calls": v[1],
                "self": v[2],
                "cumulative": v[3],
            }
            for k, v in top
        ],
        "prof_file": str(out),
    }


# --- reporting -------------------------------------------------------------------------------


def summarize(values: list[float]) -> dict[str, float]:
    """Median, min, max and the spread ((max-min)/median) of ``values``."""
    median = statistics.median(values)
    return {
        "median": median,
        "min": min(values),
        "max": max(values),
        "spread": (max(values) - min(values)) / median if median else 0.0,
        "n": len(values),
    }


def print_table(report: dict[str, Any], users: int) -> None:
    rows = report["summary"]
    core = {
        kind: rows["core"][kind]["median"]
        for kind in ("idle", "new")
        if kind in rows.get("core", {})
    }
    print(
        f"\nper tick, {users} mailboxes, store {report['store']}, instance "
        f"{report['instance']}: median of n ticks, min-max, spread = (max-min)/median"
    )
    print(
        f"  {'runner':12} {'tick':5} {'n':>2} {'wall s':>8} {'min-max':>15} {'spread':>7} "
        f"{'run span s':>10} {'ms/user':>8} {'x core':>7}"
    )
    for runner, kinds in rows.items():
        for kind, s in kinds.items():
            span = s.get("run_span_median")
            ratio = s["median"] / core[kind] if core.get(kind) else float("nan")
            print(
                f"  {runner:12} {kind:5} {s['n']:2d} {s['median']:8.2f} "
                f"{s['min']:7.2f}-{s['max']:<7.2f} {s['spread'] * 100:6.0f}% "
                f"{span if span is not None else float('nan'):10.2f} "
                f"{s['median'] / users * 1000:8.1f} {ratio:7.2f}"
            )
    for runner, tick in report.get("cold", {}).items():
        print(f"  {runner:12} cold   1 {tick['seconds']:8.2f}  (first idle tick after the sync)")
    print(
        f"  initial sync tick (in_process, empty mailboxes): "
        f"{report['sync_tick']['seconds']:.2f} s; append of {report['new_per_user']} msgs x "
        f"{users} users: median {statistics.median(report['append_seconds']):.2f} s"
    )


def print_profile(profile: dict[str, Any]) -> None:
    total = profile["profiled_total"]
    print(
        f"\nprofile of one in-process idle tick: {profile['tick_seconds']:.2f} s wall under "
        f"cProfile ({total:.2f} s profiled)"
    )
    print("  self time by package:")
    for name, seconds in profile["self_time_by_group"].items():
        print(f"    {name:40} {seconds:7.2f} s  {seconds / total * 100:5.1f} %")
    print("  cumulative time of key functions:")
    for label, figures in profile["cumulative"].items():
        print(f"    {label:44} {figures['seconds']:7.2f} s  {figures['calls']:6d} calls")
    print("  top self time:")
    for row in profile["top_self_time"]:
        print(
            f"    {row['function'][:60]:60} {row['calls']:7d} {row['self']:7.2f} s "
            f"(cum {row['cumulative']:.2f})"
        )
    print(f"  full profile: {profile['prof_file']} (python -m pstats)")


# --- main ------------------------------------------------------------------------------------


def write_instance_yaml(home: Path, postgres: Any | None) -> None:
    """Write ``dagster.yaml`` into ``home``: SQLite storage, or PostgreSQL on ``postgres``."""
    lines = ["telemetry:\n  enabled: false\n"]
    if postgres is not None:
        db = postgres.create_database()
        lines.append(
            "storage:\n  postgres:\n    postgres_db:\n      username: postgres\n"
            "      password: ''\n      hostname: 127.0.0.1\n"
            f"      db_name: {db}\n      port: {postgres.port}\n"
            "      scheme: postgresql+psycopg2\n"
        )
    (home / "dagster.yaml").write_text("".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=TARGET_USERS, help="mailboxes (200)")
    parser.add_argument(
        "--new-per-user",
        type=int,
        default=20,
        help="new messages per mailbox before each new-mail tick (20)",
    )
    parser.add_argument(
        "--executors",
        default=",".join(EXECUTORS),
        help=f"comma-separated, from {', '.join(EXECUTORS)}",
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument(
        "--forkserver-repeat",
        type=int,
        default=None,
        help="rounds that include the forkserver executor (default: --repeat); "
        "its ticks of 200 mailboxes take minutes",
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the mail store (postgresql: a throw-away server)",
    )
    parser.add_argument(
        "--instance",
        choices=("sqlite", "postgresql"),
        default=None,
        help="Dagster instance storage (default: the same as --store)",
    )
    parser.add_argument("--no-core", action="store_true", help="skip the core reference loop")
    parser.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="cProfile one in-process idle tick (auto: when the target is missed)",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "fetch_tick.json")
    args = parser.parse_args(argv)
    executors = [x.strip() for x in args.executors.split(",") if x.strip()]
    unknown = set(executors) - set(EXECUTORS)
    if unknown or not executors:
        parser.error(f"unknown executors {sorted(unknown)}; choose from {EXECUTORS}")
    instance_kind = args.instance or args.store

    from mail_pipeline.storage.store import MailStore
    from mail_pipeline_tests.fixtures.dovecot import DovecotServer
    from mail_pipeline_tests.fixtures.postgres import PostgresServer
    from mail_pipeline_tests.fixtures.spool_files import make_spool

    work = Path(tempfile.mkdtemp(prefix="mp-bench-tick-"))
    os.chmod(work, 0o755)
    saved_env = {
        k: os.environ.get(k)
        for k in (
            "DAGSTER_HOME",
            "MAIL_PIPELINE_DATABASE_URL",
            "MAIL_PIPELINE_ATTACHMENT_ROOT",
            "MAIL_PIPELINE_SPOOL_DIR",
            "MAIL_PIPELINE_SECRET_KEY",
        )
    }
    dovecot: Any = None
    postgres: Any = None
    store: Any = None
    instance: dg.DagsterInstance | None = None
    report: dict[str, Any] = {
        "users": args.users,
        "new_per_user": args.new_per_user,
        "executors": executors,
        "repeat": args.repeat,
        "store": args.store,
        "instance": instance_kind,
        "max_concurrent": MAX_CONCURRENT,
        "cpus": os.cpu_count(),
        "load_avg_start": os.getloadavg(),
        "timing": "wall seconds of execute_in_process / execute_job (run_span: RUN_START -> "
        "RUN_SUCCESS event timestamps); core: wall seconds of the fetch_user loop",
    }
    ticks: list[Tick] = []
    appends: list[float] = []
    profile: dict[str, Any] | None = None
    try:
        dovecot = DovecotServer()
        dovecot.start()
        if "postgresql" in (args.store, instance_kind):
            postgres = PostgresServer(work / "pg")
            postgres.start()
        if args.store == "postgresql":
            url = postgres.url(postgres.create_database())
        else:
            url = f"sqlite:///{work / 'mail.db'}"
        home = work / "dagster_home"
        home.mkdir()
        write_instance_yaml(home, postgres if instance_kind == "postgresql" else None)
        attachment_root = str(work / "attachments")
        os.environ.update(
            {
                "DAGSTER_HOME": str(home),
                "MAIL_PIPELINE_DATABASE_URL": url,
                "MAIL_PIPELINE_ATTACHMENT_ROOT": attachment_root,
                "MAIL_PIPELINE_SPOOL_DIR": str(make_spool(work / "spool")),
                "MAIL_PIPELINE_SECRET_KEY": SECRET,
            }
        )
        store = MailStore(url)
        store.upgrade()
        started = time.perf_counter()
        user_ids, logins = add_users(store, dovecot, args.users)
        report["setup_users_seconds"] = time.perf_counter() - started
        instance = dg.DagsterInstance.get()
        users = args.users
        per_round = users * args.new_per_user

        def progress(tick: Tick) -> None:
            ticks.append(tick)
            span = f", run span {tick.run_seconds:.2f} s" if tick.run_seconds else ""
            print(
                f"  {tick.runner:10} {tick.kind:5} {tick.seconds:7.2f} s{span}, "
                f"saved {tick.saved}, load {os.getloadavg()[0]:.1f}",
                flush=True,
            )

        # The first sync: every mailbox gets its cursor (the mailboxes are empty).
        print(
            f"{users} users ready in {report['setup_users_seconds']:.1f} s; first sync tick",
            flush=True,
        )
        sync = job_tick("in_process", instance, store, users, 0, "sync")
        progress(sync)
        report["sync_tick"] = asdict(sync)
        # The in-process executor's first idle tick after the sync still pays first-use
        # costs; report it apart. (The forkserver is started by the first forkserver tick of
        # the rounds, as every launched run would start its own.)
        cold: dict[str, Any] = {}
        if "in_process" in executors:
            tick = job_tick("in_process", instance, store, users, 0, "cold")
            progress(tick)
            cold["in_process"] = asdict(tick)
        report["cold"] = cold
        slow_repeat = args.repeat if args.forkserver_repeat is None else args.forkserver_repeat
        report["forkserver_repeat"] = slow_repeat

        rounds = 0

        def new_mail() -> None:
            nonlocal rounds
            rounds += 1
            appends.append(append_new_mail(dovecot, logins, f"r{rounds}", args.new_per_user))

        runners: list[tuple[str, Callable[[str, int], Tick]]] = []
        if not args.no_core:
            runners.append(
                (
                    "core",
                    lambda kind, expect: core_tick(store, attachment_root, user_ids, expect, kind),
                )
            )
        for executor in executors:

            def run_job(kind: str, expect: int, ex: str = executor) -> Tick:
                return job_tick(ex, instance, store, users, expect, kind)

            runners.append((executor, run_job))
        for round_number in range(1, args.repeat + 1):
            print(f"round {round_number}/{args.repeat}", flush=True)
            for name, run in runners:
                if name == "forkserver" and round_number > slow_repeat:
                    continue
                progress(run("idle", 0))
                new_mail()
                progress(run("new", per_round))

        summary: dict[str, dict[str, Any]] = {}
        for name, _run in runners:
            summary[name] = {}
            for kind in ("idle", "new"):
                mine = [t for t in ticks if t.runner == name and t.kind == kind]
                if not mine:
                    continue
                figures: dict[str, Any] = summarize([t.seconds for t in mine])
                spans = [t.run_seconds for t in mine if t.run_seconds is not None]
                figures["run_span_median"] = statistics.median(spans) if spans else None
                figures["per_user_ms"] = figures["median"] / users * 1000
                figures["values"] = [t.seconds for t in mine]
                summary[name][kind] = figures
        if "core" in summary:
            for name in executors:
                for kind in summary[name]:
                    summary[name][kind]["ratio_vs_core"] = (
                        summary[name][kind]["median"] / summary["core"][kind]["median"]
                    )
        report["summary"] = summary
        report["append_seconds"] = appends
        report["ticks"] = [asdict(t) for t in ticks]
        report["load_avg_end"] = os.getloadavg()

        idle = summary.get("in_process", {}).get("idle", {}).get("median")
        if idle is not None:
            scaled = idle * TARGET_USERS / users
            report["target"] = {
                "in_process_idle_seconds": idle,
                "scaled_to_200_users": scaled,
                "limit_seconds": TARGET_IDLE_SECONDS,
                "met": scaled <= TARGET_IDLE_SECONDS,
            }
        missed = bool(report.get("target")) and not report["target"]["met"]
        if args.profile == "always" or (args.profile == "auto" and missed):
            prof_path = args.json.with_suffix(".prof")
            prof_path.parent.mkdir(parents=True, exist_ok=True)
            print("profiling one in-process idle tick", flush=True)
            profile = profile_tick(instance, store, users, prof_path)
            report["profile"] = profile
    finally:
        if instance is not None:
            instance.dispose()
        if store is not None:
            store.dispose()
        if dovecot is not None:
            dovecot.close()
        try:
            if postgres is not None:
                postgres.stop()
        finally:
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            shutil.rmtree(work, ignore_errors=True)

    print_table(report, args.users)
    if profile is not None:
        print_profile(profile)
    target = report.get("target")
    if target is not None:
        print(
            f"\ntarget: in-process no-new-mail tick of {TARGET_USERS} users <= "
            f"{TARGET_IDLE_SECONDS:g} s: {target['scaled_to_200_users']:.2f} s"
            f"{' (scaled from ' + str(args.users) + ' users)' if args.users != 200 else ''}"
            f" -> {'MET' if target['met'] else 'NOT met'}"
        )
    print(
        f"load average at start {report['load_avg_start'][0]:.1f}, at end "
        f"{report['load_avg_end'][0]:.1f} ({report['cpus']} CPUs)"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"written {args.json}")
    return 0 if target is None or target["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
