"""The Haraka spool ingest: one pass over the inbox (no Dagster imports).

One pass (:meth:`SpoolIngestService.ingest`):

1. open the spool (create missing folders), make this pass's claim folder, and return the
   files of stale claim folders (owners that died) to ``inbox/`` — see
   :mod:`mail_pipeline.intake.spool.claims` for the claim and recovery rule;
2. stream ``inbox/`` with ``os.scandir`` and claim ready pairs into batches of at most
   ``batch_size`` pairs and ``batch_max_bytes`` bytes (memory is bounded by one batch,
   whatever the size of the spool);
3. per batch: read, parse (``max_size``, default 25 MiB), address, store with ONE
   :meth:`EmailSaveService.save_batch` call, and only after that commit move each pair to
   ``processed/<day>/``, ``unmatched/`` or ``failed/`` — see
   :mod:`mail_pipeline.intake.spool.batch`. A delivery FAILED for some user (the message
   itself could not be stored, whatever the error) sends the pair to ``failed/`` with reason
   ``save_failed`` (the users that were saved stay saved; ``retry-failed`` re-runs the pair
   and dedup turns them into duplicates).

``failed/`` is for messages that are bad themselves. A fault of the environment — the
attachment root full, over quota, read-only or refusing permission
(:class:`~mail_pipeline.errors.StorageUnavailable`), the database unreachable — puts the whole
batch back into the inbox and stops the pass with the error (its task FAILED), so the first
pass after the fault clears stores everything without an operator.

Crash safety follows from the order: a file leaves its claim folder only after its message is
committed, a crashed pass's claim folder is returned to the inbox by the next pass, and the
store's dedup turns a message committed but not moved into a harmless duplicate. So every
message is stored exactly once per user whatever point a pass is killed at. The crash tests
prove it by injecting a ``checkpoint`` (see :mod:`mail_pipeline.platform.faults`) that stops
the pass at a named point; in production it does nothing.

Counting: ``found`` pairs claimed; ``saved``/``duplicates`` count DELIVERIES (message × user);
``failed``, ``unmatched``, ``refused`` count pairs/files. Into a HARAKA_EMAIL_FETCH EmailTask
they go as fetched=found, saved, duplicate, failed (per batch, so a killed pass leaves what it
did), and the whole result under ``details["spool_ingest"]``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator

from mail_pipeline.intake.limits import DEFAULT_MAX_MESSAGE_BYTES
from mail_pipeline.intake.spool.batch import BatchProcessor
from mail_pipeline.intake.spool.layout import Spool
from mail_pipeline.intake.spool.records import ClaimStats, Item, Problem
from mail_pipeline.intake.spool.report import IngestResult
from mail_pipeline.intake.spool.status import SpoolStatus
from mail_pipeline.platform.faults import Checkpoint, no_checkpoint
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.heartbeat import TaskHeartbeat
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import (
    EmailSource,
    LockGrant,
    MailStore,
    TaskCounters,
    TaskStatus,
)

__all__ = [
    "DEFAULT_BATCH_MAX_BYTES",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_SIZE",
    "IngestResult",
    "SpoolIngestService",
    "ingest_spool",
]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 200
DEFAULT_MAX_SIZE = DEFAULT_MAX_MESSAGE_BYTES
DEFAULT_BATCH_MAX_BYTES = 64 * 1024 * 1024


class SpoolIngestService:
    """Ingests the Haraka spool into the store (see the module docstring)."""

    def __init__(
        self,
        store: MailStore,
        spool_dir: str | os.PathLike[str] | Spool,
        attachments: AttachmentStorage | str | os.PathLike[str],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_size: int = DEFAULT_MAX_SIZE,
        batch_max_bytes: int = DEFAULT_BATCH_MAX_BYTES,
        fsync: bool = True,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        """Prepare a service; nothing is touched until a method is called.

        ``attachments`` is an :class:`AttachmentStorage` or its root directory. ``fsync``
        makes attachment files and each batch's destination directories durable.
        ``checkpoint`` is called at the points a crash test may stop a pass at (see
        :mod:`mail_pipeline.intake.spool.batch`); the default does nothing.

        Raises:
            ValueError: a non-positive batch size, size limit or batch byte limit.
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if max_size <= 0:
            raise ValueError(f"max_size must be positive, got {max_size}")
        if batch_max_bytes <= 0:
            raise ValueError(f"batch_max_bytes must be positive, got {batch_max_bytes}")
        self.store = store
        self.spool = spool_dir if isinstance(spool_dir, Spool) else Spool(spool_dir)
        if not isinstance(attachments, AttachmentStorage):
            attachments = AttachmentStorage(attachments, fsync=fsync)
        self.saver = EmailSaveService(store, attachments)
        self.batch_size = batch_size
        self.max_size = max_size
        self.batch_max_bytes = batch_max_bytes
        self.fsync = fsync
        self.batches = BatchProcessor(
            self.saver, max_size=max_size, fsync=fsync, checkpoint=checkpoint
        )

    # --- the pass ------------------------------------------------------------------------

    def ingest(
        self,
        *,
        task_id: str | None = None,
        progress: Callable[[IngestResult], None] | None = None,
    ) -> IngestResult:
        """Run one pass over the inbox and return what it did.

        ``task_id``: an existing (RUNNING) EmailTask to add the counts and log entries to; its
        state is left to the caller. ``progress`` is called after every batch with the
        running result.

        Raises:
            SpoolError: the spool cannot be opened or used.
            StorageUnavailable: the attachment root cannot take files (full, read-only, no
                permission); the current batch's files are back in the inbox, earlier
                batches are committed and moved.
            SQLAlchemyError: the database failed (the same).
        """
        started = time.monotonic()
        result = IngestResult(task_id=task_id)
        spool = self.spool.open()
        claim = spool.new_claim()
        try:
            for stale in spool.stale_claims(exclude=claim):
                returned, problems = spool.recover_claim(stale)
                result.recovered += returned
                for problem in problems:
                    result.add_problem(problem)
                log.warning(
                    "returned %d pairs of stale claim %s to the inbox", returned, stale.name
                )
            if result.recovered and task_id:
                self.store.tasks.add_execution_log(
                    task_id, "recover", f"returned {result.recovered} pairs of stale claims"
                )
            stats = ClaimStats()
            for batch in self._batches(spool.iter_claims(claim, stats)):
                spool.heartbeat(claim)
                before = result.counters
                self.batches.process(spool, batch, result)
                result.batches += 1
                result.absorb(stats)
                if task_id:
                    delta = result.counters
                    self.store.tasks.add_counters(
                        task_id,
                        TaskCounters(
                            delta.fetched - before.fetched,
                            delta.saved - before.saved,
                            delta.failed - before.failed,
                            delta.duplicate - before.duplicate,
                        ),
                    )
                if progress is not None:
                    progress(result)
            result.absorb(stats)
        except BaseException:
            with contextlib.suppress(Exception):
                spool.recover_claim(claim)
            result.duration_seconds = time.monotonic() - started
            if task_id:
                with contextlib.suppress(Exception):
                    self.store.tasks.set_detail(task_id, "spool_ingest", result.as_dict())
            raise
        with contextlib.suppress(OSError):
            claim.rmdir()
        result.duration_seconds = time.monotonic() - started
        if task_id:
            self.store.tasks.set_detail(task_id, "spool_ingest", result.as_dict())
            self.store.tasks.add_execution_log(task_id, "ingest", result.summary())
        return result

    def ingest_as_task(
        self,
        *,
        run_id: str | None = None,
        progress: Callable[[IngestResult], None] | None = None,
        lease: LockGrant | None = None,
    ) -> IngestResult:
        """Run :meth:`ingest` inside a new HARAKA_EMAIL_FETCH task of its own.

        The task is created RUNNING, gets the counters, and is marked COMPLETED, or FAILED
        with the error when the pass raises (the error is re-raised). While the pass runs,
        the task's heartbeat (and ``lease``, for run ``run_id``) is kept fresh. A task closed
        under the pass keeps its state; ``task_closed`` of the result says how it was closed.

        Raises:
            LeaseLostError: another owner holds ``lease`` (the task is marked FAILED).
            SpoolError, SQLAlchemyError: as :meth:`ingest`.
        """
        task = self.store.tasks.create(
            EmailSource.HARAKA,
            run_id=run_id,
            status=TaskStatus.RUNNING,
            message="spool ingest started",
        )
        try:
            with TaskHeartbeat(self.store, task.task_id, lease=lease, run_id=run_id):
                result = self.ingest(task_id=task.task_id, progress=progress)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self.store.tasks.finish(task.task_id, error=f"{type(exc).__name__}: {exc}"[:2000])
            raise
        done = self.store.tasks.finish(task.task_id, message=result.summary())
        if done.already_closed:
            result.task_closed = done.note()
            log.warning("%s when the spool ingest finished", result.task_closed)
        return result

    def _batches(self, items: Iterator[Item]) -> Iterator[list[Item]]:
        """Group ``items`` into lists of at most ``batch_size`` pairs / ``batch_max_bytes``."""
        batch: list[Item] = []
        size = 0
        for item in items:
            batch.append(item)
            size += item.size
            if len(batch) >= self.batch_size or size >= self.batch_max_bytes:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    # --- maintenance ---------------------------------------------------------------------

    def status(self) -> SpoolStatus:
        """Return the spool's status (see :meth:`Spool.status`).

        Raises:
            SpoolError: the spool cannot be opened.
        """
        return self.spool.open().status()

    def retry_failed(self) -> tuple[int, list[Problem]]:
        """Move every ``failed/`` pair back into the inbox (removing its ``.error.json``).

        Returns:
            (pairs moved, problems).
        """
        spool = self.spool.open()
        return spool.requeue(spool.failed)

    def reingest_unmatched(self) -> tuple[int, list[Problem]]:
        """Move every ``unmatched/`` pair back into the inbox (e.g. after adding an alias).

        Returns:
            (pairs moved, problems).
        """
        spool = self.spool.open()
        return spool.requeue(spool.unmatched)


def ingest_spool(
    store: MailStore,
    spool_dir: str | os.PathLike[str],
    attachment_root: str | os.PathLike[str],
    *,
    task_id: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_size: int = DEFAULT_MAX_SIZE,
) -> IngestResult:
    """One ingest pass over ``spool_dir``; see :meth:`SpoolIngestService.ingest`."""
    service = SpoolIngestService(
        store, spool_dir, attachment_root, batch_size=batch_size, max_size=max_size
    )
    return service.ingest(task_id=task_id)
