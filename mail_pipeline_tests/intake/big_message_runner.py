"""One ingest of whatever waits (one big message) in a process of its own, for the memory test.

Run as ``python -m mail_pipeline_tests.intake.big_message_runner spool DATABASE_URL SPOOL
ATTACHMENTS`` or ``... imap DATABASE_URL USER ATTACHMENTS`` (IMAP passwords sealed with
:data:`~mail_pipeline_tests.intake.imap.mailboxes.SECRET`). After the imports and a first
query it resets the peak resident memory (``/proc/self/clear_refs``) and reads the resident
memory, then ingests, and prints one JSON line: ``saved``, ``baseline_kib`` and ``peak_kib``
(``VmHWM``).
"""

from __future__ import annotations

import argparse
import gc
import json
from pathlib import Path

from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.fetcher import MailboxFetcher
from mail_pipeline.intake.spool.ingest import SpoolIngestService
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.intake.imap.mailboxes import SECRET


def status_kib(field: str) -> int:
    """Return the ``/proc/self/status`` field ``field`` (``VmRSS``, ``VmHWM``) in KiB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def main(argv: list[str] | None = None) -> int:
    """Ingest once and print the figures; return 0."""
    parser = argparse.ArgumentParser(prog="big_message_runner")
    parser.add_argument("path", choices=("spool", "imap"))
    parser.add_argument("database_url")
    parser.add_argument("source", help="the spool directory, or the user name")
    parser.add_argument("attachments", type=Path)
    args = parser.parse_args(argv)
    store = MailStore(args.database_url)
    store.users.user_ids_by_address(["nobody@example.org"])  # connect before the baseline
    gc.collect()
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM := VmRSS
    baseline = status_kib("VmRSS")
    if args.path == "spool":
        saved = SpoolIngestService(store, args.source, args.attachments).ingest().saved
    else:
        saver = EmailSaveService(store, AttachmentStorage(args.attachments))
        fetcher = MailboxFetcher(store, saver, EmailConfigManager(store, SECRET))
        saved = fetcher.fetch_user(args.source).counters.saved
    peak = status_kib("VmHWM")
    store.dispose()
    print(json.dumps({"saved": saved, "baseline_kib": baseline, "peak_kib": peak}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
