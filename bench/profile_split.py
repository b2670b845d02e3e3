"""Where an ingest's time goes: a cProfile of one run, split by area (issue 13).

:func:`profiled` runs a function under cProfile, in its own thread and in every thread it
starts (the IMAP fetcher fetches the next batch in a worker thread), and :func:`split` turns
the merged table into seconds per area, which do not overlap and add up to the profiled total
(:func:`run_profiled` gives the merged table itself, for ``fetch_tick.py``'s own breakdown):

- ``SQL/ORM``: SQLAlchemy, Alembic, the ``sqlite3`` and ``psycopg2`` drivers, the store's own
  code (``mail_pipeline/storage/store/``);
- ``parse``: ``mail_pipeline/mime/``, flanker, the stdlib ``email`` package, chardet;
- ``file IO``: opening, reading, writing, flushing, listing and removing files and folders
  (the OS calls), the attachment storage's code;
- ``renames``: ``rename``/``replace`` (the spool's claims and moves);
- ``IMAP``: imapclient, imaplib, ``ssl``, sockets (waits for the server included);
- ``other``: the rest (the pipeline's own glue, logging, dataclasses, ...);
- ``waits``: threads blocked on a lock, a future or a sleep (the task heartbeat's thread, the
  main thread waiting for the fetch thread or a parse worker); shown apart, and the
  percentages of the other areas are of the time without it.

A function that belongs to no area by itself (a builtin such as ``re.Pattern.sub``, a stdlib
helper) gives its self time to the areas of its callers, in proportion to the time each caller
spent in it.
"""

from __future__ import annotations

import contextlib
import cProfile
import pstats
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

Key = tuple[str, int, str]

AREAS = ("SQL/ORM", "parse", "file IO", "renames", "IMAP", "other", "waits")

#: (area, needles in the file name of Python code).
_CODE_AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "SQL/ORM",
        ("/sqlalchemy/", "/alembic/", "/psycopg2/", "/sqlite3/", "mail_pipeline/storage/store/"),
    ),
    ("parse", ("mail_pipeline/mime/", "/flanker/", "/email/", "/chardet/", "/cchardet/")),
    ("file IO", ("mail_pipeline/storage/attachments.py", "mail_pipeline/intake/spool/files.py")),
    ("IMAP", ("/imapclient/", "/imaplib.py", "/ssl.py", "/socket.py")),
)
#: (area, needles in the name of a builtin, e.g. "<built-in method posix.rename>").
_BUILTIN_AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "waits",
        ("'acquire' of '_thread", "'get' of '_queue", "time.sleep", "select.poll", "select.select"),
    ),
    ("renames", ("posix.rename", "posix.replace")),
    ("SQL/ORM", ("sqlite3", "psycopg2")),
    ("IMAP", ("_ssl.", "_socket.", "SSLSocket", "socket' objects")),
    (
        "file IO",
        (
            "posix.open",
            "posix.close",
            "posix.read",
            "posix.write",
            "posix.fsync",
            "posix.mkdir",
            "posix.stat",
            "posix.lstat",
            "posix.fstat",
            "posix.scandir",
            "posix.listdir",
            "posix.unlink",
            "posix.rmdir",
            "io.open",
            "_io.",
            "BufferedReader",
            "BufferedWriter",
            "FileIO",
            "ScandirIterator",
            "CDLL",
            "_FuncPtr",
        ),
    ),
)


def _direct_area(key: Key) -> str | None:
    filename, _line, name = key
    if filename == "~" or filename.startswith("<"):
        for area, needles in _BUILTIN_AREAS:
            if any(n in name for n in needles):
                return area
        return None
    for area, needles in _CODE_AREAS:
        if any(n in filename for n in needles):
            return area
    return None


class ThreadProfiles:
    """cProfile for every thread started while active: each new thread enables a profiler of
    its own at its first call; :meth:`add_to` merges them (each thread's wall time, so the sum
    is thread-seconds, waits included)."""

    def __init__(self) -> None:
        self.profilers: list[cProfile.Profile] = []

    def _hook(self, frame: Any, event: str, arg: Any) -> None:
        profiler = cProfile.Profile()
        self.profilers.append(profiler)
        profiler.enable()  # replaces this hook in the new thread

    def __enter__(self) -> ThreadProfiles:
        threading.setprofile(self._hook)
        return self

    def __exit__(self, *exc_info: object) -> None:
        threading.setprofile(None)

    def add_to(self, stats: pstats.Stats) -> int:
        """Add every thread's table to ``stats`` (snapshots: the threads have ended and
        ``disable`` would act on the calling thread); return how many threads there were."""
        for profiler in self.profilers:
            profiler.snapshot_stats()
            stats.add(_Snapshot(profiler.stats))  # type: ignore[arg-type]
        return len(self.profilers)


class _Snapshot:
    """What :class:`pstats.Stats` takes from a profiler: its ``stats`` table."""

    def __init__(self, table: dict[Any, Any]) -> None:
        self.stats = table

    def create_stats(self) -> None:
        """Nothing to do: the table is a snapshot already."""


def run_profiled(
    fn: Callable[[], T], out: Path, *, threads: bool = True
) -> tuple[T, pstats.Stats, int]:
    """Run ``fn`` under cProfile, with ``threads`` the threads it starts too (merged in);
    save the table to ``out`` (its folder made).

    Returns:
        ``fn``'s result, the merged table, and how many threads besides the calling one were
        profiled.
    """
    profiler = cProfile.Profile()
    pool = ThreadProfiles()
    with contextlib.ExitStack() as stack:
        if threads:
            stack.enter_context(pool)
        profiler.enable()
        try:
            value = fn()
        finally:
            profiler.disable()
    stats = pstats.Stats(profiler)
    count = pool.add_to(stats)
    out.parent.mkdir(parents=True, exist_ok=True)
    stats.dump_stats(str(out))
    return value, stats, count


def profiled(fn: Callable[[], T], out: Path) -> tuple[T, dict[str, Any]]:
    """Run ``fn`` under cProfile (its threads too); save the table to ``out``.

    Returns:
        ``fn``'s result and :func:`split` of the profile.
    """
    value, stats, count = run_profiled(fn, out)
    report = split(stats)
    report["threads"] = 1 + count
    report["prof_file"] = str(out)
    return value, report


def split(stats: pstats.Stats) -> dict[str, Any]:
    """Return the profile's seconds per area (see the module docstring), its total, and the
    20 functions of ``mail_pipeline`` with the most cumulative time."""
    table: dict[Key, tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    memo: dict[Key, dict[str, float]] = {}

    def shares(key: Key, depth: int = 0) -> dict[str, float]:
        """The fractions of ``key``'s self time that belong to each area."""
        if key in memo:
            return memo[key]
        area = _direct_area(key)
        if area is not None:
            memo[key] = {area: 1.0}
            return memo[key]
        callers: dict[Key, tuple[Any, ...]] = table[key][4] if key in table else {}
        memo[key] = {"other": 1.0}  # a cycle or the depth limit falls back to "other"
        if depth > 30 or not callers:
            return memo[key]
        weights = {caller: float(v[2]) for caller, v in callers.items()}
        total = sum(weights.values())
        if total <= 0:
            weights = {caller: 1.0 for caller in callers}
            total = float(len(callers))
        mixed: dict[str, float] = {}
        for caller, weight in weights.items():
            for name, part in shares(caller, depth + 1).items():
                mixed[name] = mixed.get(name, 0.0) + part * weight / total
        memo[key] = mixed
        return mixed

    areas = dict.fromkeys(AREAS, 0.0)
    total = 0.0
    for key, (_cc, _nc, tt, _ct, _callers) in table.items():
        total += tt
        for name, part in shares(key).items():
            areas[name] = areas.get(name, 0.0) + tt * part
    ours = [
        (key, value)
        for key, value in table.items()
        if "/mail_pipeline/" in key[0] or "/bench/" in key[0]
    ]
    ours.sort(key=lambda item: item[1][3], reverse=True)
    return {
        "total_seconds": total,
        "areas": areas,
        "top_cumulative": [
            {
                "function": f"{_short(k[0])}:{k[1]}:{k[2]}",
                "calls": v[1],
                "cumulative": v[3],
                "self": v[2],
            }
            for k, v in ours[:20]
        ],
    }


def _short(filename: str) -> str:
    for marker in ("/mail_pipeline/", "/bench/"):
        if marker in filename:
            return marker.strip("/") + "/" + filename.split(marker, 1)[1]
    return Path(filename).name


def print_split(title: str, report: dict[str, Any]) -> None:
    """Print a :func:`split` report under ``title``."""
    waits = report["areas"].get("waits", 0.0)
    busy = (report["total_seconds"] - waits) or 1.0
    print(
        f"\n{title}: {report['total_seconds']:.2f} s profiled over {report['threads']} "
        f"thread(s), {waits:.2f} s of it waiting"
    )
    print("  seconds by area (self time; builtins and helpers go to their callers' areas):")
    for name, seconds in sorted(report["areas"].items(), key=lambda kv: -kv[1]):
        if name != "waits":
            print(f"    {name:10} {seconds:8.2f} s  {seconds / busy * 100:5.1f} % of busy time")
    print("  top cumulative (project code):")
    for row in report["top_cumulative"]:
        print(
            f"    {row['function'][:72]:72} {row['calls']:7d} calls {row['cumulative']:7.2f} s"
            f" (self {row['self']:.2f})"
        )
    print(f"  full profile: {report['prof_file']} (python -m pstats)")
