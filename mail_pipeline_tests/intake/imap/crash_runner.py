"""One IMAP fetch in a process of its own that stops at a known point, for the kill -9 test.

Run as ``python -m mail_pipeline_tests.intake.imap.crash_runner DATABASE_URL ATTACHMENTS USER
--batch-size N --pause-after-batch K --marker PATH`` with the secret key in
``MAIL_PIPELINE_SECRET_KEY``. The fetcher gets a checkpoint that, after the K-th committed
batch, writes PATH (this process's id) and sleeps for an hour, so the test can SIGKILL it
there. Without ``--pause-after-batch`` it fetches to the end and prints the result's summary.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.fetcher import MailboxFetcher
from mail_pipeline.platform.faults import Checkpoint, no_checkpoint
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import MailStore


def pause_after_batch(batch: int, marker: Path) -> Checkpoint:
    """Return a checkpoint that writes ``marker`` and sleeps at ``after_batch:<batch>``."""

    def checkpoint(point: str) -> None:
        if point == f"after_batch:{batch}":
            marker.write_text(f"{os.getpid()}\n")
            time.sleep(3600)

    return checkpoint


def main(argv: list[str] | None = None) -> int:
    """Fetch once; return 0 when the mailbox was fetched, 1 when it failed."""
    parser = argparse.ArgumentParser(prog="crash_runner")
    parser.add_argument("database_url")
    parser.add_argument("attachments", type=Path)
    parser.add_argument("username")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--pause-after-batch", type=int)
    parser.add_argument("--marker", type=Path)
    args = parser.parse_args(argv)
    checkpoint: Checkpoint = no_checkpoint
    if args.pause_after_batch is not None:
        if args.marker is None:
            parser.error("--pause-after-batch needs --marker")
        checkpoint = pause_after_batch(args.pause_after_batch, args.marker)
    store = MailStore(args.database_url)
    try:
        fetcher = MailboxFetcher(
            store,
            EmailSaveService(store, AttachmentStorage(args.attachments)),
            EmailConfigManager(store, os.environ["MAIL_PIPELINE_SECRET_KEY"]),
            batch_size=args.batch_size,
            checkpoint=checkpoint,
        )
        result = fetcher.fetch_user(args.username)
        print(result.summary())
        return 0 if result.ok else 1
    finally:
        store.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
