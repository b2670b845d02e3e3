"""Run one spool ingest pass in its own process, optionally stopping it at a checkpoint.

``python -m mail_pipeline_tests.intake.spool.crash_runner STORE_URL SPOOL ATTACHMENTS BATCH_SIZE
[POINT MARKER]``: with ``POINT`` (``after_claim``, ``mid_batch``, ``after_commit``,
``mid_move``), the pass writes ``<pid> <point>`` to the file ``MARKER`` when it reaches that
point and then sleeps until the test SIGKILLs it. The checkpoint is injected into
:class:`SpoolIngestService`; production code reads no test switch.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from mail_pipeline.intake.spool.ingest import SpoolIngestService
from mail_pipeline.platform.faults import Checkpoint, no_checkpoint
from mail_pipeline.storage.store import MailStore


def pause_at(point: str, marker: Path) -> Checkpoint:
    """Return a checkpoint that, at ``point``, writes ``marker`` and sleeps until killed."""

    def checkpoint(reached: str) -> None:
        if reached != point:
            return
        marker.write_text(f"{os.getpid()} {reached}\n")
        while True:
            time.sleep(3600)

    return checkpoint


def main(argv: list[str]) -> int:
    """Run the pass described by ``argv`` (see the module docstring); return 0."""
    store_url, spool, attachments, batch_size, *pause = argv
    checkpoint = pause_at(pause[0], Path(pause[1])) if pause else no_checkpoint
    service = SpoolIngestService(
        MailStore(store_url),
        spool,
        attachments,
        batch_size=int(batch_size),
        fsync=False,
        checkpoint=checkpoint,
    )
    print(service.ingest_as_task().summary())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
