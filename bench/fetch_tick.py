"""Benchmark of one ``email_fetch_job`` tick over many IMAP mailboxes (issue 5, "Speed").

In one run, against a private Dovecot with ``--users`` mailboxes (each a store user with a
valid IMAPS config) and an empty Haraka spool, after a first tick has synced every mailbox:

(a) a tick with NO new mail;
(b) a tick with ``--new-per-user`` new messages in every mailbox (APPENDed before the tick,
    5-20 KB each, a third with an attachment);

for each executor in ``--executors``:

- ``in_process``: ``email_fetch_job`` itself (the job's executor), run with
  ``execute_in_process`` on a persistent instance;
- ``forkserver``: the same job (``build_email_fetch_job``) on the
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

Latency mode (``--latency-ms D`` > 0, issue 11): every user's IMAP config points at a
:class:`~mail_pipeline_tests.fixtures.latency_proxy.LatencyProxyProcess` in front of Dovecot
(connection set-up 2 D, every chunk D each way; its own process, so its CPU is not this
process's). Per round (``--repeat``, median, min-max):

- ``idle``: ``email_fetch_job`` as shipped (``execute_in_process``, default run config), then
  each ``--shard-size`` x ``--workers`` variant (a workers variant raises the per-host cap with
  it: all mailboxes are on one host), then the reference: ``MailboxFetcher.fetch_user`` for every
  user in a plain ``ThreadPoolExecutor(32)`` under one IMAP task; CPU ms per mailbox is the
  ``time.process_time()`` delta of this process / mailboxes;
- ``new``: ``--new-per-user`` messages APPENDed to every mailbox before the job tick and again
  before the reference tick (each must store exactly users x new-per-user);
- ``silent``: ``--silent`` extra users on a
  :class:`~mail_pipeline_tests.fixtures.servers.SilentServer` (never answers), named to sort
  evenly among the others, active for one job tick only (which must report exactly that many
  failed mailboxes); growth = its median - the idle median.

Targets (PASS/FAIL printed): 200 idle <= 15 s and <= 1.5 x reference; 2000 idle <= 120 s
(moonshot <= 60 s); 200 new <= 1.5 x reference; silent growth <= 1.1 x connect timeout; CPU per
idle mailbox <= 20 ms. A miss (or ``--profile always``) adds a cProfile of one job idle tick
that includes the shard's pool threads (thread-seconds, waits included)::

    .venv/bin/python bench/fetch_tick.py --latency-ms 50 --users 200
    .venv/bin/python bench/fetch_tick.py --latency-ms 50 --users 2000 --scenarios idle \
        --shard-size 500,2000 --workers 32,64

Latency-mode results go to ``bench/results/fetch_tick_latency_<users>.json`` by default.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The repository and bench/ itself: the step processes of the forkserver executor import this
# file by its path, without its folder on sys.path.
for _path in (str(ROOT), str(ROOT / "bench")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import dagster as dg  # noqa: E402
from common import write_report  # noqa: E402 (bench/, beside this script)
from profile_split import run_profiled  # noqa: E402

from mail_pipeline.defs.fetch.assets import FETCH_GRAPH, fetch_step  # noqa: E402
from mail_pipeline.defs.fetch.jobs import build_email_fetch_job, email_fetch_job  # noqa: E402
from mail_pipeline.defs.fetch.schedules import every_mailbox  # noqa: E402
from mail_pipeline.defs.imap.partitions import MAILBOX_PARTITIONS  # noqa: E402
from mail_pipeline.defs.resources import ImapResource, build_resources  # noqa: E402
from mail_pipeline.intake.imap.shard import (  # noqa: E402
    DEFAULT_CONNECTIONS_PER_HOST,
    DEFAULT_FETCH_WORKERS,
    DEFAULT_SHARD_SIZE,
)
from mail_pipeline.platform.settings import load_settings  # noqa: E402

SECRET = "a passphrase for the fetch tick benchmark"
TARGET_IDLE_SECONDS = 30.0
TARGET_USERS = 200
MAX_CONCURRENT = 4
EXECUTORS = ("in_process", "forkserver")


def email_fetch_forkserver_job() -> dg.JobDefinition:
    """The forkserver variant of the fetch job: same graph, same resources (from the
    environment, as in the code location), multiprocess executor. A module-level function so
    that ``reconstructable`` can build it again in the step processes."""
    return build_email_fetch_job(
        dg.multiprocess_executor.configured(
            {"max_concurrent": MAX_CONCURRENT, "start_method": {"forkserver": {}}}
        ),
        name="email_fetch_job_forkserver",
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


def _add_user(
    store: Any, name: str, port: int, login: str, password: str, ca_file: str, active: bool = True
) -> int:
    """Create store user ``name`` with an IMAPS config for 127.0.0.1:``port``; return its id."""
    from mail_pipeline.intake.imap.config import EmailConfigManager

    user = store.users.add(name, f"{name}@example.org", is_active=active)
    EmailConfigManager(store, SECRET).update_fetch_config(
        user.id,
        {
            "imap_config": {
                "imap_host": "127.0.0.1",
                "imap_ssl_port": port,
                "username": login,
                "password": password,
                "use_ssl": True,
                "ca_file": ca_file,
            },
            "filter_config": {"folders": ["INBOX"], "max_age_days": None},
        },
    )
    return int(user.id)


def add_users(
    store: Any, dovecot: Any, count: int, port: int | None = None
) -> tuple[list[int], list[str]]:
    """Create ``count`` store users, each with a fresh Dovecot mailbox (IMAPS config), fetched
    from ``port`` (default: Dovecot's IMAPS port; a latency proxy's in the latency mode)."""
    ids: list[int] = []
    logins: list[str] = []
    for i in range(count):
        mail_user = dovecot.new_user()
        ids.append(
            _add_user(
                store,
                f"tick{i:04d}",
                dovecot.imaps_port if port is None else port,
                mail_user.username,
                mail_user.password,
                str(dovecot.ca_cert_path),
            )
        )
        logins.append(mail_user.username)
    return ids, logins


def add_silent_users(store: Any, port: int, count: int, among: int, ca_file: str) -> list[int]:
    """Create ``count`` INACTIVE users fetched from a server that never answers (``port``),
    named so that they sort evenly among ``among`` users of :func:`add_users` (the fetch
    plan's order is by user name): ``tick0010s`` comes right after ``tick0010``."""
    positions = [int((k + 0.5) * among / count) for k in range(count)]
    return [
        _add_user(store, f"tick{pos:04d}s", port, f"silent{k}", "x", ca_file, active=False)
        for k, pos in enumerate(positions)
    ]


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
    cpu_seconds: float = 0.0  # time.process_time() delta of this process
    mailboxes: int = 0
    step_seconds: dict[str, float] = field(default_factory=dict)  # op -> summed step wall s


def _run_events(
    instance: dg.DagsterInstance, run_id: str
) -> tuple[float | None, int, dict[str, Any], dict[str, float]]:
    """Return (RUN_START -> RUN_SUCCESS seconds, successful steps, close_imap_fetch metadata,
    op name -> summed STEP_START -> STEP_SUCCESS seconds of its steps)."""
    start = end = None
    steps = 0
    close: dict[str, Any] = {}
    step_start: dict[str, float] = {}
    step_seconds: dict[str, float] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        if kind == "PIPELINE_START" or kind == "RUN_START":
            start = record.timestamp
        elif kind in ("PIPELINE_SUCCESS", "RUN_SUCCESS", "RUN_FAILURE"):
            end = record.timestamp
        elif kind == "STEP_START" and event.step_key:
            step_start[event.step_key] = record.timestamp
        elif kind == "STEP_SUCCESS":
            steps += 1
            key = event.step_key or ""
            if key in step_start:
                op = key.split("[", 1)[0].removeprefix(FETCH_GRAPH + ".")
                step_seconds[op] = step_seconds.get(op, 0.0) + record.timestamp - step_start[key]
        elif kind == "STEP_OUTPUT" and event.step_key == fetch_step("close_imap_fetch"):
            data = event.event_specific_data.metadata  # type: ignore[union-attr]
            close = {key: value.value for key, value in data.items()}
    span = end - start if start is not None and end is not None else None
    return span, steps, close, step_seconds


def job_tick(
    executor: str,
    instance: dg.DagsterInstance,
    store: Any,
    users: int,
    expect_saved: int,
    kind: str,
    *,
    run_config: dict[str, Any] | None = None,
    resources: dict[str, Any] | None = None,
    expect_failed: int = 0,
    runner: str | None = None,
) -> Tick:
    """Run one tick of the fetch job with ``executor``, check it, and return its figures.

    ``run_config`` and ``resources`` (in-process only) replace the defaults (none; the code
    location's); ``expect_failed`` mailboxes of ``users`` must fail; ``runner`` names the tick
    (default: the executor)."""
    before = store.messages.count()
    # as the schedule asks for it: over every mailbox partition (the partitions sensor's job),
    # unless MAIL_PIPELINE_FETCH_PARTITIONS=off
    tags: dict[str, str] = {}
    if load_settings().fetch_over_partitions:
        names = [u.username for u in store.users.all(active_only=True)]
        known = set(instance.get_dynamic_partitions(MAILBOX_PARTITIONS))
        instance.add_dynamic_partitions(MAILBOX_PARTITIONS, [n for n in names if n not in known])
        tags = every_mailbox(instance)
    cpu = time.process_time()
    started = time.perf_counter()
    if executor == "in_process":
        result = email_fetch_job.execute_in_process(
            run_config=run_config,
            resources=resources or build_resources(),
            instance=instance,
            raise_on_error=False,
            tags=tags,
        )
        seconds = time.perf_counter() - started
        success, run_id = result.success, result.run_id
    elif executor == "forkserver":
        with dg.execute_job(
            dg.reconstructable(email_fetch_forkserver_job),
            instance=instance,
            raise_on_error=False,
            tags=tags,
        ) as executed:
            seconds = time.perf_counter() - started
            success, run_id = executed.success, executed.run_id
    else:
        raise ValueError(f"unknown executor {executor!r}")
    cpu = time.process_time() - cpu
    saved = store.messages.count() - before
    span, steps, close, step_seconds = _run_events(instance, run_id)
    # with failed mailboxes the run is failed by its last step, after all the work was done
    if not success and not (expect_failed and "release_fetch_lock" in step_seconds):
        raise RuntimeError(f"{executor} {kind} tick: run {run_id} failed")
    if close.get("mailboxes") != users or close.get("failed_mailboxes") != expect_failed:
        raise RuntimeError(
            f"{executor} {kind} tick: mailboxes {close.get('mailboxes')}, "
            f"failed {close.get('failed_mailboxes')} (expected {users}, {expect_failed})"
        )
    if expect_saved >= 0 and saved != expect_saved:
        raise RuntimeError(f"{executor} {kind} tick: saved {saved}, expected {expect_saved}")
    return Tick(
        kind, runner or executor, seconds, span, saved, steps, run_id, cpu, users, step_seconds
    )


def core_tick(
    store: Any,
    attachment_root: str,
    user_ids: list[int],
    expect_saved: int,
    kind: str,
    workers: int = 1,
    runner: str = "core",
) -> Tick:
    """Fetch every mailbox with :class:`MailboxFetcher` in this process, under one IMAP task:
    one after the other, or (``workers`` > 1) in a plain thread pool of that size."""
    from mail_pipeline.intake.imap.config import EmailConfigManager
    from mail_pipeline.intake.imap.fetcher import MailboxFetcher
    from mail_pipeline.storage.attachments import AttachmentStorage
    from mail_pipeline.storage.save_service import EmailSaveService
    from mail_pipeline.storage.store import EmailSource, TaskStatus

    before = store.messages.count()
    cpu = time.process_time()
    started = time.perf_counter()
    fetcher = MailboxFetcher(
        store,
        EmailSaveService(store, AttachmentStorage(attachment_root)),
        EmailConfigManager(store, SECRET),
    )
    task = store.tasks.create(
        EmailSource.IMAP, status=TaskStatus.RUNNING, message="fetch tick benchmark (core loop)"
    )

    def one(uid: int) -> Any:
        return fetcher.fetch_user(uid, task_id=task.task_id)

    if workers > 1:
        with ThreadPoolExecutor(workers, thread_name_prefix="bench-core") as pool:
            results = list(pool.map(one, user_ids))
    else:
        results = [one(uid) for uid in user_ids]
    failed = [r.username for r in results if not r.ok]
    store.tasks.mark_completed(task.task_id)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    saved = store.messages.count() - before
    if failed:
        raise RuntimeError(f"{runner} {kind} tick: failed mailboxes {failed[:5]}")
    if expect_saved >= 0 and saved != expect_saved:
        raise RuntimeError(f"{runner} {kind} tick: saved {saved}, expected {expect_saved}")
    return Tick(kind, runner, seconds, None, saved, cpu_seconds=cpu, mailboxes=len(user_ids))


# --- profile ---------------------------------------------------------------------------------

#: The op bodies of email_fetch (their cumulative times do not nest in one another).
_OPS = (
    "acquire_fetch_lock",
    "cleanup_stale_tasks_op",
    "plan_imap_fetch",
    "fetch_mailbox_shard",
    "close_imap_fetch",
    "ingest_spool",
    "release_fetch_lock",
)

#: (label, file suffix, function names): cumulative times worth reading in a tick's profile.
_KEY_FUNCTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("op bodies (the 7 ops of email_fetch)", "mail_pipeline/defs/", _OPS),
    ("  fetch_mailbox_shard op", "mail_pipeline/defs/imap/ops.py", ("fetch_mailbox_shard",)),
    ("    fetch_shard one mailbox (in the pool)", "mail_pipeline/intake/imap/shard.py", ("one",)),
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


def profile_tick(
    instance: dg.DagsterInstance,
    store: Any,
    users: int,
    out: Path,
    *,
    threads: bool = False,
    **job: Any,
) -> dict[str, Any]:
    """Run one in-process idle tick under cProfile; return a breakdown (and save the .prof).

    With ``threads``, the threads the tick starts (the shard's fetch pool) are profiled too
    and merged in; their times are wall seconds per thread, so totals are thread-seconds.
    ``job`` goes to :func:`job_tick`."""
    tick, stats, pool_threads = run_profiled(
        lambda: job_tick("in_process", instance, store, users, 0, "profile", **job),
        out,
        threads=threads,
    )
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total = max(ct for (_cc, _nc, _tt, ct, _callers) in table.values())
    if threads:  # the main thread's span plus every pool thread's
        total = sum(tt for (_cc, _nc, tt, _ct, _callers) in table.values())
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
        "pool_threads": pool_threads,
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
        f"cProfile ({total:.2f} s profiled"
        + (
            f", thread-seconds: main thread + {profile['pool_threads']} pool threads"
            if profile.get("pool_threads")
            else ""
        )
        + ")"
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


#: The environment variables a run of this bench sets (and restores afterwards).
_ENV_KEYS = (
    "DAGSTER_HOME",
    "MAIL_PIPELINE_DATABASE_URL",
    "MAIL_PIPELINE_ATTACHMENT_ROOT",
    "MAIL_PIPELINE_SPOOL_DIR",
    "MAIL_PIPELINE_SECRET_KEY",
)


@dataclass
class BenchEnv:
    """The throw-away servers and stores of one bench run."""

    work: Path
    dovecot: Any
    store: Any
    instance: dg.DagsterInstance
    attachment_root: str


@contextmanager
def bench_env(store_kind: str, instance_kind: str) -> Iterator[BenchEnv]:
    """Start Dovecot (and PostgreSQL if asked), a migrated mail store, an empty spool and a
    Dagster instance in a temporary directory, with the environment the code location reads;
    stop and remove everything afterwards."""
    from mail_pipeline.storage.store import MailStore
    from mail_pipeline_tests.fixtures.dovecot import DovecotServer
    from mail_pipeline_tests.fixtures.postgres import PostgresServer
    from mail_pipeline_tests.fixtures.spool_files import make_spool

    work = Path(tempfile.mkdtemp(prefix="mp-bench-tick-"))
    os.chmod(work, 0o755)
    saved_env = {k: os.environ.get(k) for k in _ENV_KEYS}
    dovecot: Any = None
    postgres: Any = None
    store: Any = None
    instance: dg.DagsterInstance | None = None
    try:
        dovecot = DovecotServer()
        dovecot.start()
        if "postgresql" in (store_kind, instance_kind):
            postgres = PostgresServer(work / "pg")
            postgres.start()
        if store_kind == "postgresql":
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
        instance = dg.DagsterInstance.get()
        yield BenchEnv(work, dovecot, store, instance, attachment_root)
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


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
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
    parser.add_argument("--json", type=Path, default=None, help="results file")
    latency = parser.add_argument_group("latency mode (--latency-ms > 0; see the module docstring)")
    latency.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="one-way delay of a latency proxy in front of Dovecot (0: off, the classic mode)",
    )
    latency.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"latency mode: comma-separated, from {', '.join(SCENARIOS)}",
    )
    latency.add_argument(
        "--silent", type=int, default=10, help="latency mode: mailboxes that never answer (10)"
    )
    latency.add_argument(
        "--shard-size",
        type=_int_list,
        default=[],
        help="latency mode: extra idle variants with these shard_size values (comma-separated)",
    )
    latency.add_argument(
        "--workers",
        type=_int_list,
        default=[],
        help="latency mode: extra idle variants with these fetch_workers (and per-host cap) "
        "values (comma-separated)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.latency_ms > 0:
        return latency_main(args)
    if args.json is None:
        args.json = ROOT / "bench" / "results" / "fetch_tick.json"
    executors = [x.strip() for x in args.executors.split(",") if x.strip()]
    unknown = set(executors) - set(EXECUTORS)
    if unknown or not executors:
        parser.error(f"unknown executors {sorted(unknown)}; choose from {EXECUTORS}")
    instance_kind = args.instance or args.store
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
    with bench_env(args.store, instance_kind) as env:
        profile = classic_run(args, env, executors, report)

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
    write_report(args.json, report)
    return 0 if target is None or target["met"] else 1


def classic_run(
    args: argparse.Namespace, env: BenchEnv, executors: list[str], report: dict[str, Any]
) -> dict[str, Any] | None:
    """The classic mode (no latency): the rounds of the module docstring; fills ``report``
    and returns the profile (if one was taken)."""
    store, dovecot, instance = env.store, env.dovecot, env.instance
    attachment_root = env.attachment_root
    ticks: list[Tick] = []
    appends: list[float] = []
    profile: dict[str, Any] | None = None
    started = time.perf_counter()
    user_ids, logins = add_users(store, dovecot, args.users)
    report["setup_users_seconds"] = time.perf_counter() - started
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
    return profile


# --- latency mode ----------------------------------------------------------------------------

#: The scenarios of the latency mode (``idle`` always runs: it is the others' baseline).
SCENARIOS = ("idle", "new", "silent")
#: Threads of the reference pool (the shipped ``fetch_workers``).
REFERENCE_WORKERS = 32
#: Idle tick limits by mailbox count (the first limit whose count >= --users applies).
IDLE_LIMITS = ((200, 15.0), (2000, 120.0))
IDLE_MOONSHOT_2000 = 60.0
MAX_RATIO = 1.5
SILENT_GROWTH_FACTOR = 1.1
MAX_CPU_MS_PER_IDLE_MAILBOX = 20.0


@dataclass(frozen=True)
class JobVariant:
    """``email_fetch_job`` as shipped (both None), or with another shard size / pool size.

    A ``workers`` variant raises the per-host cap with it: every bench mailbox is on one host,
    so the cap (32) would otherwise bound the pool."""

    name: str
    shard_size: int | None = None
    workers: int | None = None

    def run_config(self) -> dict[str, Any] | None:
        if self.shard_size is None:
            return None
        plan = {"plan_imap_fetch": {"config": {"shard_size": self.shard_size}}}
        return {"ops": {FETCH_GRAPH: {"ops": plan}}}

    def resources(self) -> dict[str, Any]:
        resources = build_resources()
        if self.workers is not None:
            cap = max(self.workers, DEFAULT_CONNECTIONS_PER_HOST)
            resources["imap"] = ImapResource(
                fetch_workers=self.workers, max_connections_per_host=cap
            )
        return resources


def job_variants(shard_sizes: list[int], workers: list[int]) -> list[JobVariant]:
    """The shipped job first, then one variant per (shard size, workers) asked for."""
    variants = [JobVariant("job")]
    sizes: list[int | None] = [*shard_sizes] or [None]
    counts: list[int | None] = [*workers] or [None]
    for size in sizes:
        for count in counts:
            if size is None and count is None:
                continue
            name = f"job s{size or DEFAULT_SHARD_SIZE} w{count or DEFAULT_FETCH_WORKERS}"
            variants.append(JobVariant(name, size, count))
    return variants


@dataclass
class LatencyBench:
    """The mailboxes and the ticks of one latency-mode run."""

    args: argparse.Namespace
    env: BenchEnv
    user_ids: list[int]
    logins: list[str]
    silent_ids: list[int]
    ticks: list[Tick] = field(default_factory=list)
    appends: list[float] = field(default_factory=list)

    @property
    def users(self) -> int:
        return len(self.user_ids)

    def record(self, tick: Tick) -> Tick:
        self.ticks.append(tick)
        cpu_ms = tick.cpu_seconds / max(tick.mailboxes, 1) * 1000
        print(
            f"  {tick.runner:14} {tick.kind:6} {tick.seconds:7.2f} s, saved {tick.saved}, "
            f"cpu {cpu_ms:.1f} ms/mailbox, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        return tick

    def job(self, variant: JobVariant, kind: str, expect_saved: int, silent: int = 0) -> Tick:
        env = self.env
        return self.record(
            job_tick(
                "in_process",
                env.instance,
                env.store,
                self.users + silent,
                expect_saved,
                kind,
                run_config=variant.run_config(),
                resources=variant.resources(),
                expect_failed=silent,
                runner=variant.name,
            )
        )

    def reference(self, kind: str, expect_saved: int) -> Tick:
        env = self.env
        return self.record(
            core_tick(
                env.store,
                env.attachment_root,
                self.user_ids,
                expect_saved,
                kind,
                workers=REFERENCE_WORKERS,
                runner="reference",
            )
        )

    def new_mail(self, tag: str) -> int:
        """APPEND --new-per-user messages to every mailbox; return how many a tick must store."""
        per_user = int(self.args.new_per_user)
        self.appends.append(append_new_mail(self.env.dovecot, self.logins, tag, per_user))
        return self.users * per_user

    def set_silent(self, active: bool) -> None:
        for uid in self.silent_ids:
            self.env.store.users.set_active(uid, active)


def latency_round(
    bench: LatencyBench, number: int, variants: list[JobVariant], scenarios: list[str]
) -> None:
    """One round: idle ticks (every variant, then the reference), then the new-mail pair, then
    the tick with the silent mailboxes."""
    for variant in variants:
        bench.job(variant, "idle", 0)
    bench.reference("idle", 0)
    if "new" in scenarios:
        bench.job(variants[0], "new", bench.new_mail(f"j{number}"))
        bench.reference("new", bench.new_mail(f"r{number}"))
    if "silent" in scenarios and bench.silent_ids:
        bench.set_silent(True)
        try:
            bench.job(variants[0], "silent", 0, silent=len(bench.silent_ids))
        finally:
            bench.set_silent(False)


def latency_summary(ticks: list[Tick]) -> dict[str, dict[str, Any]]:
    """runner -> kind -> median/min/max of the wall seconds, CPU ms per mailbox, step split."""
    summary: dict[str, dict[str, Any]] = {}
    for tick in ticks:
        summary.setdefault(tick.runner, {}).setdefault(tick.kind, []).append(tick)
    out: dict[str, dict[str, Any]] = {}
    for runner, kinds in summary.items():
        out[runner] = {}
        for kind, mine in kinds.items():
            figures: dict[str, Any] = summarize([t.seconds for t in mine])
            figures["values"] = [t.seconds for t in mine]
            figures["mailboxes"] = mine[0].mailboxes
            figures["cpu_ms_per_mailbox"] = statistics.median(
                t.cpu_seconds / max(t.mailboxes, 1) * 1000 for t in mine
            )
            ops = sorted({op for t in mine for op in t.step_seconds})
            figures["step_seconds_median"] = {
                op: statistics.median(t.step_seconds.get(op, 0.0) for t in mine) for op in ops
            }
            out[runner][kind] = figures
    for runner, kinds in out.items():
        for kind, figures in kinds.items():
            ref = out.get("reference", {}).get(kind)
            if runner != "reference" and ref:
                figures["ratio_vs_reference"] = figures["median"] / ref["median"]
    return out


def _target(name: str, value: float | None, limit: float, unit: str) -> dict[str, Any]:
    met = value is not None and value <= limit
    return {"target": name, "value": value, "limit": limit, "unit": unit, "met": met}


def latency_targets(
    summary: dict[str, dict[str, Any]], users: int, connect_timeout: float
) -> list[dict[str, Any]]:
    """The targets of the latency mode that this run measured, each with its value."""
    job = summary.get("job", {})
    idle = job.get("idle", {}).get("median")
    targets = []
    limit = next((seconds for count, seconds in IDLE_LIMITS if users <= count), None)
    if limit is not None:
        targets.append(_target(f"{users} idle: job tick", idle, limit, "s"))
    if 200 < users <= 2000:
        targets.append(_target(f"{users} idle: job tick (moonshot)", idle, IDLE_MOONSHOT_2000, "s"))
    for kind in ("idle", "new"):
        if kind in job:
            ratio = job[kind].get("ratio_vs_reference")
            targets.append(_target(f"{users} {kind}: job / reference", ratio, MAX_RATIO, "x"))
    if "silent" in job and idle is not None:
        growth = job["silent"]["median"] - idle
        targets.append(
            _target(
                f"silent among {users}: growth vs idle",
                growth,
                connect_timeout * SILENT_GROWTH_FACTOR,
                "s",
            )
        )
    if "idle" in job:
        cpu = job["idle"]["cpu_ms_per_mailbox"]
        targets.append(
            _target("CPU per idle mailbox (job)", cpu, MAX_CPU_MS_PER_IDLE_MAILBOX, "ms")
        )
    return targets


def print_latency_table(report: dict[str, Any]) -> None:
    users, summary = report["users"], report["summary"]
    print(
        f"\nlatency {report['latency_ms']:g} ms one way, {users} mailboxes "
        f"(+{report['silent']} silent in 'silent'), store {report['store']}: median of "
        f"{report['repeat']} rounds, min-max; x ref = median / reference median"
    )
    print(
        f"  {'runner':14} {'tick':6} {'n':>2} {'median s':>9} {'min-max':>15} "
        f"{'ms/mbox':>8} {'cpu ms/mbox':>11} {'x ref':>6}"
    )
    for runner, kinds in summary.items():
        for kind, s in kinds.items():
            ratio = s.get("ratio_vs_reference", float("nan"))
            print(
                f"  {runner:14} {kind:6} {s['n']:2d} {s['median']:9.2f} "
                f"{s['min']:7.2f}-{s['max']:<7.2f} {s['median'] / s['mailboxes'] * 1000:8.1f} "
                f"{s['cpu_ms_per_mailbox']:11.1f} {ratio:6.2f}"
            )
    steps = summary.get("job", {}).get("idle", {}).get("step_seconds_median", {})
    if steps:
        idle = summary["job"]["idle"]["median"]
        split = ", ".join(f"{op} {sec:.2f}" for op, sec in steps.items())
        print(
            f"  job idle, median step seconds: {split}; outside steps "
            f"{idle - sum(steps.values()):.2f}"
        )
    print(
        f"  first sync tick {report['sync_tick']['seconds']:.2f} s, cold idle tick "
        f"{report['cold_tick']['seconds']:.2f} s; proxy {report.get('proxy')}"
    )


def print_targets(targets: list[dict[str, Any]]) -> None:
    print("\ntargets:")
    for t in targets:
        value = "n/a" if t["value"] is None else f"{t['value']:.2f}"
        print(
            f"  {'PASS' if t['met'] else 'FAIL'}  {t['target']:40} {value:>8} {t['unit']:2} "
            f"(<= {t['limit']:g} {t['unit']})"
        )


def latency_setup(
    args: argparse.Namespace, env: BenchEnv, proxy_port: int, silent_port: int | None
) -> LatencyBench:
    """Create the users (behind the proxy; the silent ones inactive) and return the bench."""
    started = time.perf_counter()
    user_ids, logins = add_users(env.store, env.dovecot, args.users, port=proxy_port)
    silent_ids: list[int] = []
    if silent_port is not None:
        ca_file = str(env.dovecot.ca_cert_path)
        silent_ids = add_silent_users(env.store, silent_port, args.silent, args.users, ca_file)
    print(
        f"{args.users} users (+{len(silent_ids)} silent) ready in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return LatencyBench(args, env, user_ids, logins, silent_ids)


def latency_run(
    args: argparse.Namespace, env: BenchEnv, scenarios: list[str], report: dict[str, Any]
) -> None:
    """Start the proxy (and the silent server), run the rounds, fill ``report``."""
    from mail_pipeline_tests.fixtures.latency_proxy import LatencyProxyProcess
    from mail_pipeline_tests.fixtures.servers import SilentServer

    variants = job_variants(args.shard_size, args.workers)
    silent = SilentServer() if "silent" in scenarios and args.silent > 0 else None
    proxy = LatencyProxyProcess(env.dovecot.host, env.dovecot.imaps_port, args.latency_ms)
    proxy.start()
    try:
        bench = latency_setup(args, env, proxy.port, silent.port if silent else None)
        report["sync_tick"] = asdict(bench.job(variants[0], "sync", 0))
        report["cold_tick"] = asdict(bench.job(variants[0], "cold", 0))
        bench.ticks.clear()
        for number in range(1, args.repeat + 1):
            print(f"round {number}/{args.repeat}", flush=True)
            latency_round(bench, number, variants, scenarios)
        report["proxy"] = proxy.stats()
        if silent is not None:
            report["silent_server"] = {"accepted": silent.accepted, "max_open": silent.max_open}
        report["ticks"] = [asdict(t) for t in bench.ticks]
        report["append_seconds"] = bench.appends
        report["summary"] = latency_summary(bench.ticks)
        report["targets"] = latency_targets(report["summary"], args.users, report["timeout"])
        missed = not all(t["met"] for t in report["targets"])
        if args.profile == "always" or (args.profile == "auto" and missed):
            print("profiling one job idle tick (with its pool threads)", flush=True)
            report["profile"] = profile_tick(
                env.instance,
                env.store,
                args.users,
                args.json.with_suffix(".prof"),
                threads=True,
                runner="job",
            )
    finally:
        proxy.close()
        if silent is not None:
            silent.close()


def latency_main(args: argparse.Namespace) -> int:
    """The latency mode: see the module docstring."""
    scenarios = [x.strip() for x in args.scenarios.split(",") if x.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    if args.json is None:
        args.json = ROOT / "bench" / "results" / f"fetch_tick_latency_{args.users}.json"
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "mode": "latency",
        "latency_ms": args.latency_ms,
        "users": args.users,
        "silent": args.silent if "silent" in scenarios else 0,
        "scenarios": scenarios,
        "new_per_user": args.new_per_user,
        "repeat": args.repeat,
        "store": args.store,
        "timeout": ImapResource().connect_timeout,
        "defaults": {
            "shard_size": DEFAULT_SHARD_SIZE,
            "fetch_workers": DEFAULT_FETCH_WORKERS,
            "max_connections_per_host": DEFAULT_CONNECTIONS_PER_HOST,
        },
        "reference_workers": REFERENCE_WORKERS,
        "cpus": os.cpu_count(),
        "load_avg_start": os.getloadavg(),
        "timing": "job: wall seconds of execute_in_process (cpu: time.process_time() delta of "
        "this process / mailboxes); reference: MailboxFetcher.fetch_user for every user in a "
        f"ThreadPoolExecutor({REFERENCE_WORKERS}) under one IMAP task",
    }
    with bench_env(args.store, args.instance or args.store) as env:
        latency_run(args, env, scenarios, report)
    report["load_avg_end"] = os.getloadavg()
    print_latency_table(report)
    if "profile" in report:
        print_profile(report["profile"])
    print_targets(report["targets"])
    print(
        f"load average at start {report['load_avg_start'][0]:.2f}, at end "
        f"{report['load_avg_end'][0]:.2f} ({report['cpus']} CPUs)"
    )
    write_report(args.json, report)
    return 0 if all(t["met"] for t in report["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
