"""Benchmark of the peak memory of one big message, on the spool path and on the IMAP path.

    .venv/bin/python bench/big_message.py [--sizes 25[,50]] [--runs 3]
        [--kinds attachment,html] [--paths spool,imap] [--stores sqlite[,postgresql]]
        [--json PATH] [--trace]

For each size (MiB, less 64 KiB; 25 is the default message limit, 50 an optional second
point, ingested with the limit raised to fit) and each kind of message — ``attachment``: a
short text body and one base64 attachment that makes up the rest; ``html``: one big
quoted-printable text/html body, so the stored text is derived from the HTML — one child
process per run ingests exactly that one message into a fresh store (SQLite by default; a
throw-away PostgreSQL from ``mail_pipeline_tests.fixtures.postgres`` with ``--stores``),
durable defaults (attachments fsynced):

* ``spool``: a Haraka spool pair, through :meth:`SpoolIngestService.ingest_as_task`;
* ``imap``: APPENDed to a private Dovecot (``mail_pipeline_tests.fixtures.dovecot``), through
  :meth:`MailboxFetcher.fetch_user` over IMAPS.

The child imports everything and opens the store first, then takes its baseline: the peak
(``VmHWM``) is reset through ``/proc/self/clear_refs`` and the current ``VmRSS`` read. After
the ingest the figure is ``VmHWM - baseline``, divided by the message size. The medians of
``--runs`` runs are printed with the load average, and met / not met against the target of
3x. ``--trace`` runs each child under :mod:`tracemalloc` too and prints its peak of Python
allocations (which does not see SQLite's, libpq's or OpenSSL's own buffers). Results go to
``--json`` (default ``bench/results/big_message.json``).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import quopri
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import imaps_account, write_report  # bench/, beside this script

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mail_pipeline.intake.limits import DEFAULT_MAX_MESSAGE_BYTES  # noqa: E402 (after the path)

SECRET = "a passphrase for the big message benchmark"
TARGET = 3.0
ADDRESS = "big@bench.example"
MiB = 1024 * 1024
#: The messages stay this far below the size limit (25 MiB is the limit itself).
HEADROOM = 64 * 1024


# --- messages --------------------------------------------------------------------------------


def _headers(kind: str) -> bytes:
    return (
        "Received: from client.example.net (127.0.0.1) by mx.bench.example\r\n"
        "From: Bob <bob@example.net>\r\n"
        f"To: Big <{ADDRESS}>\r\n"
        f"Subject: a big message ({kind})\r\n"
        "Date: Tue, 01 Sep 2026 10:00:00 +0200\r\n"
        f"Message-ID: <big-{kind}@example.net>\r\n"
        "MIME-Version: 1.0\r\n"
    ).encode()


def attachment_message(size: int, seed: int = 1) -> tuple[bytes, bytes]:
    """Return (message of about ``size`` bytes: a text body and one base64 attachment, the
    attachment's bytes)."""
    rng = random.Random(seed)
    blob = rng.randbytes((size - 2048) * 57 // 78)  # base64 with CRLF: 78 bytes per 57
    encoded = base64.encodebytes(blob).replace(b"\n", b"\r\n")
    raw = (
        _headers("attachment")
        + b'Content-Type: multipart/mixed; boundary="=big="\r\n\r\n'
        + b"--=big=\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + b"Here is the file you asked for.\r\n"
        + b"--=big=\r\nContent-Type: application/octet-stream\r\n"
        + b'Content-Disposition: attachment; filename="big.bin"\r\n'
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + encoded
        + b"--=big=--\r\n"
    )
    return raw, blob


def html_message(size: int, seed: int = 1) -> tuple[bytes, bytes]:
    """Return (message of about ``size`` bytes: one quoted-printable text/html body, the
    decoded HTML bytes)."""
    rng = random.Random(seed)
    words = ("lorem", "ipsum", "dolor", "sit", "amet", "café", "naïve", "über", "façade")
    rows: list[str] = []
    length = 0
    while length < size * 0.9:
        cells = "".join(f"<td>{' '.join(rng.choices(words, k=6))}</td>" for _ in range(4))
        row = f"<tr>{cells}</tr>\n"
        rows.append(row)
        length += len(row) + 40  # about what quoted-printable adds
    html = ("<html><body><table>\n" + "".join(rows) + "</table></body></html>\n").encode()
    encoded = quopri.encodestring(html).replace(b"\n", b"\r\n")
    raw = (
        _headers("html")
        + b"Content-Type: text/html; charset=utf-8\r\n"
        + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        + encoded
    )
    return raw, html


def make_message(kind: str, size: int) -> tuple[bytes, bytes]:
    """Return (raw message, decoded payload) of ``kind`` with about ``size`` bytes."""
    maker = attachment_message if kind == "attachment" else html_message
    return maker(size)


# --- the child: one ingest -------------------------------------------------------------------


def _status(field: str) -> int:
    """Return a ``/proc/self/status`` field in KiB (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_peak() -> bool:
    """Reset this process's ``VmHWM`` to its current RSS; False when the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def limit_for(size: int) -> int:
    """Return the message size limit for a run with a ``size``-byte message: the default
    limit, or just above the message when it is bigger (the optional 50 MiB point)."""
    return max(DEFAULT_MAX_MESSAGE_BYTES, size + HEADROOM)


def child(path: str, url: str, spool_or_user: str, attachments: str, trace: bool) -> None:
    """``--child``: ingest one message, print its figures as one JSON line."""
    import gc
    import tracemalloc

    from mail_pipeline.intake.imap.config import EmailConfigManager
    from mail_pipeline.intake.imap.fetcher import MailboxFetcher
    from mail_pipeline.intake.spool.ingest import SpoolIngestService
    from mail_pipeline.storage.attachments import AttachmentStorage
    from mail_pipeline.storage.save_service import EmailSaveService
    from mail_pipeline.storage.store import MailStore

    store = MailStore(url)
    store.users.user_ids_by_address([ADDRESS])  # the store is open: a connection is pooled
    if trace:
        tracemalloc.start()
    gc.collect()
    reset = _reset_peak()
    baseline = _status("VmRSS")
    hwm_before = _status("VmHWM")
    started = time.perf_counter()
    if path == "spool":
        eml = next(Path(spool_or_user, "inbox").glob("*.eml"))
        service = SpoolIngestService(
            store, spool_or_user, attachments, max_size=limit_for(eml.stat().st_size)
        )
        result = service.ingest_as_task()
        ok, saved, detail = result.failed == 0, result.saved, result.summary()
    else:
        fetcher = MailboxFetcher(
            store,
            EmailSaveService(store, AttachmentStorage(attachments)),
            EmailConfigManager(store, SECRET),
        )
        outcome = fetcher.fetch_user(spool_or_user)
        ok, saved, detail = outcome.ok, outcome.counters.saved, str(outcome.error)
    seconds = time.perf_counter() - started
    peak = _status("VmHWM")
    figures: dict[str, Any] = {
        "ok": ok and saved == 1,
        "detail": detail,
        "seconds": seconds,
        "baseline_kib": baseline,
        "hwm_reset": reset,
        "hwm_before_kib": hwm_before,
        "peak_kib": peak,
    }
    if trace:
        figures["traced_peak_kib"] = tracemalloc.get_traced_memory()[1] // 1024
    store.dispose()
    print(json.dumps(figures))


def run_child(argv: list[str]) -> dict[str, Any]:
    """Run one child with ``argv`` and return its figures.

    Raises:
        RuntimeError: the child failed or did not store the message.
    """
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *argv],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child failed: {done.stderr.strip()[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not figures["ok"]:
        raise RuntimeError(f"the message was not stored: {figures['detail']}")
    return figures


# --- the parent ------------------------------------------------------------------------------


def new_store(url: str, imap: tuple[Any, str, str] | None = None, limit: int = 0) -> None:
    """Migrate the store at ``url``, add the user, and its IMAPS account when ``imap`` is
    (server, login, password), with message size limit ``limit`` (0: the default)."""
    from mail_pipeline.intake.imap.config import EmailConfigManager
    from mail_pipeline.storage.store import MailStore

    store = MailStore(url)
    store.upgrade()
    user = store.users.add("big", ADDRESS)
    if imap is not None:
        server, login, password = imap
        extra = {"max_message_bytes": limit} if limit else {}
        EmailConfigManager(store, SECRET).update_fetch_config(
            user.id, imaps_account(server, login, password, **extra)
        )
    store.dispose()


def measure(
    path: str, raw: bytes, work: Path, dovecot: Any, postgres: Any, trace: bool, run: int
) -> dict[str, Any]:
    """One run of one message on one path, in a fresh store (SQLite, or a new database of
    ``postgres`` when given); return the child's figures."""
    from mail_pipeline_tests.fixtures.spool_files import write_pair

    here = Path(tempfile.mkdtemp(prefix=f"{path}-{run}-", dir=work))
    url = (
        postgres.url(postgres.create_database())
        if postgres is not None
        else f"sqlite:///{here / 'store.db'}"
    )
    if path == "spool":
        new_store(url)
        write_pair(here / "spool", raw, [ADDRESS])
        target = str(here / "spool")
    else:
        user = dovecot.new_user()
        dovecot.append(user.username, raw)
        new_store(url, (dovecot, user.username, user.password), limit_for(len(raw)))
        target = "big"
    figures = run_child([path, url, target, str(here / "attachments"), "1" if trace else "0"])
    shutil.rmtree(here, ignore_errors=True)
    figures["above_baseline_kib"] = figures["peak_kib"] - figures["baseline_kib"]
    figures["ratio"] = figures["above_baseline_kib"] * 1024 / len(raw)
    return figures


def run_case(
    args: argparse.Namespace,
    case: tuple[int, str, str, str],
    work: Path,
    dovecot: Any,
    postgres: Any,
) -> dict[str, Any]:
    """Measure one (size in MiB, kind, store, path) ``--runs`` times; print and return it."""
    size, kind, store, path = case
    raw, _payload = make_message(kind, size * MiB - HEADROOM)
    pg = postgres if store == "postgresql" else None
    runs = [measure(path, raw, work, dovecot, pg, args.trace, i) for i in range(args.runs)]
    ratio = statistics.median(r["ratio"] for r in runs)
    above = statistics.median(r["above_baseline_kib"] for r in runs) / 1024
    seconds = statistics.median(r["seconds"] for r in runs)
    traced = ""
    if args.trace:
        traced_mib = statistics.median(r["traced_peak_kib"] for r in runs) / 1024
        traced = f", tracemalloc peak {traced_mib:.0f} MiB"
    met = ratio <= TARGET
    print(
        f"{size:3d} MiB {kind:10} {store:10} {path:5}  peak above baseline {above:6.1f} MiB"
        f" = {ratio:4.2f}x the message ({seconds:.2f} s{traced}):"
        f" {'met' if met else 'NOT met'} (target {TARGET:.0f}x)",
        flush=True,
    )
    return {
        "size_mib": size,
        "bytes": len(raw),
        "kind": kind,
        "store": store,
        "path": path,
        "median_ratio": ratio,
        "median_above_baseline_mib": above,
        "median_seconds": seconds,
        "met": met,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25", help="message sizes in MiB (e.g. 25,50)")
    parser.add_argument("--kinds", default="attachment,html")
    parser.add_argument("--paths", default="spool,imap")
    parser.add_argument("--stores", default="sqlite", help="sqlite and/or postgresql")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trace", action="store_true", help="also report tracemalloc's peak")
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "results" / "big_message.json"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    kinds = [k for k in args.kinds.split(",") if k in ("attachment", "html")]
    paths = [p for p in args.paths.split(",") if p in ("spool", "imap")]
    stores = [b for b in args.stores.split(",") if b in ("sqlite", "postgresql")]
    if not sizes or not kinds or not paths or not stores or args.runs <= 0:
        parser.error("nothing to measure")

    from mail_pipeline_tests.fixtures.dovecot import DovecotServer
    from mail_pipeline_tests.fixtures.postgres import PostgresServer

    work = Path(tempfile.mkdtemp(prefix="mp-bench-big-"))
    os.chmod(work, 0o755)  # the PostgreSQL server runs as the postgres user
    dovecot = DovecotServer() if "imap" in paths else None
    postgres = PostgresServer(work / "pg") if "postgresql" in stores else None
    report: dict[str, Any] = {"runs": args.runs, "target_ratio": TARGET, "cases": []}
    try:
        if dovecot is not None:
            dovecot.start()
        if postgres is not None:
            postgres.start()
        for case in itertools.product(sizes, kinds, stores, paths):
            report["cases"].append(run_case(args, case, work, dovecot, postgres))
    finally:
        try:
            if dovecot is not None:
                dovecot.close()
            if postgres is not None:
                postgres.stop()
        finally:
            shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    report["loadavg"] = load
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    met = all(case["met"] for case in report["cases"])
    print(f"target (<= {TARGET:.0f}x on every case): {'met' if met else 'NOT met'}")
    write_report(args.json, report)
    return 0 if met else 1


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6] == "1")
        sys.exit(0)
    sys.exit(main())
