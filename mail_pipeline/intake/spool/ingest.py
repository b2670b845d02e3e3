"""The Haraka spool ingest: claim, parse, route, save, move (no Dagster imports).

One pass (:meth:`SpoolIngestService.ingest`):

1. open the spool (create missing folders), make this pass's claim folder, and return the
   files of stale claim folders (owners that died) to ``inbox/`` — see
   :mod:`mail_pipeline.intake.spool.layout`
   for the claim and recovery rule;
2. stream ``inbox/`` with ``os.scandir`` and claim ready pairs into batches of at most
   ``batch_size`` pairs and ``batch_max_bytes`` bytes (memory is bounded by one batch,
   whatever the size of the spool);
3. per batch: read each ``.eml`` as BYTES (8-bit mail in any charset is valid mail) with
   ``O_NOFOLLOW``, parse it (``max_size``, default 25 MiB), collect its recipients — the
   envelope ``rcpt_to`` of its ``.meta`` (Bcc included; header recipients stay on the message
   as parsed), or for a legacy seed file its To/Cc/Bcc/Delivered-To/X-Original-To headers —
   resolve every address of the batch in ONE query, and store one delivery per matched user
   with ONE :meth:`EmailSaveService.save_batch` call;
4. only after that commit, move each pair: all its deliveries SAVED or DUPLICATE →
   ``processed/<day>/``; no user matched → ``unmatched/``; unreadable, unparseable or too large
   → ``failed/`` with ``<id>.error.json``; a delivery FAILED for some user (the message itself
   could not be stored, whatever the error) → ``failed/`` with reason ``save_failed`` once
   every user's outcome is known (the users that were saved stay saved; ``retry-failed``
   re-runs the pair and dedup turns them into duplicates). Each destination directory is
   fsynced once per batch.

``failed/`` is for messages that are bad themselves. A fault of the environment — the
attachment root full, over quota, read-only or refusing permission
(:class:`~mail_pipeline.errors.StorageUnavailable`), the database unreachable — puts the whole
batch back into the inbox and stops the pass with the error (its task FAILED), so the first
pass after the fault clears stores everything without an operator.

Crash safety follows from the order: a file leaves its claim folder only after its message is
committed, a crashed pass's claim folder is returned to the inbox by the next pass, and the
store's dedup turns a message committed but not moved into a harmless duplicate. So every
message is stored exactly once per user whatever point a pass is killed at.

Counting: ``found`` pairs claimed; ``saved``/``duplicates`` count DELIVERIES (message × user);
``failed``, ``unmatched``, ``refused`` count pairs/files. Into a HARAKA_EMAIL_FETCH EmailTask
they go as fetched=found, saved, duplicate, failed (per batch, so a killed pass leaves what it
did), and the whole result under ``details["spool_ingest"]``.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import email.utils
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mail_pipeline.errors import MessageParseError, MessageTooLargeError, SpoolError
from mail_pipeline.intake.limits import DEFAULT_MAX_MESSAGE_BYTES
from mail_pipeline.intake.spool.layout import (
    ClaimStats,
    FileTooLarge,
    Item,
    Problem,
    Spool,
    SpoolStatus,
    fsync_dir,
    load_meta,
    read_nofollow,
    test_pause,
)
from mail_pipeline.mime import ParsedMessage, parse_message
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.heartbeat import TaskHeartbeat
from mail_pipeline.storage.save_service import Delivery, EmailSaveService, Outcome
from mail_pipeline.storage.store import (
    EmailSource,
    LockGrant,
    MailStore,
    TaskCounters,
    TaskStatus,
    normalize_address,
)

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 200
DEFAULT_MAX_SIZE = DEFAULT_MAX_MESSAGE_BYTES
DEFAULT_BATCH_MAX_BYTES = 64 * 1024 * 1024
#: At most this many problems are kept in a result (the rest are only counted).
MAX_PROBLEMS = 1000

_LEGACY_HEADERS = ("to", "cc", "bcc", "delivered-to", "x-original-to")


@dataclass
class IngestResult:
    """What one ingest pass did.

    Attributes:
        task_id: the EmailTask the counts were recorded into (None if none).
        found: pairs claimed from the inbox (legacy files included).
        saved: deliveries stored (one message for one user).
        duplicates: deliveries that were already stored.
        failed: pairs moved to ``failed/`` (unparseable, too large, bad meta, save failed).
        unmatched: pairs moved to ``unmatched/`` (no known recipient).
        refused: symlinks / non-regular files found and left alone.
        processed: pairs moved to ``processed/``.
        recovered: pairs returned to the inbox from stale claim folders.
        problems: per-file problems (capped at MAX_PROBLEMS; ``problems_dropped`` counts the
            rest).
        task_closed: set by :meth:`SpoolIngestService.ingest_as_task` when its task was
            closed under the pass (e.g. by stale-task cleanup): how it was closed.
    """

    task_id: str | None = None
    found: int = 0
    saved: int = 0
    duplicates: int = 0
    failed: int = 0
    unmatched: int = 0
    refused: int = 0
    processed: int = 0
    recovered: int = 0
    batches: int = 0
    duration_seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    problems_dropped: int = 0
    task_closed: str = ""

    def add_problem(self, problem: Problem) -> None:
        """Record a problem (only the first MAX_PROBLEMS are kept)."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.problems_dropped += 1

    @property
    def counters(self) -> TaskCounters:
        """The counts as EmailTask counters (fetched = found)."""
        return TaskCounters(fetched=self.found, saved=self.saved, failed=self.failed,
                            duplicate=self.duplicates)

    def summary(self) -> str:
        """One line: the counts."""
        return (f"found {self.found}, saved {self.saved}, duplicates {self.duplicates}, "
                f"failed {self.failed}, unmatched {self.unmatched}, refused {self.refused}, "
                f"recovered {self.recovered}")

    def as_dict(self) -> dict[str, Any]:
        """Return the result as JSON-serialisable data (problems capped at 100)."""
        data = asdict(self)
        data["problems"] = [asdict(p) for p in self.problems[:100]]
        return data


@dataclass
class _Loaded:
    item: Item
    meta: dict[str, Any]
    parsed: ParsedMessage
    addresses: list[str]


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
    ) -> None:
        """Prepare a service; nothing is touched until a method is called.

        ``attachments`` is an :class:`AttachmentStorage` or its root directory. ``fsync``
        makes attachment files and each batch's destination directories durable.

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
                log.warning("returned %d pairs of stale claim %s to the inbox", returned,
                            stale.name)
            if result.recovered and task_id:
                self.store.tasks.add_execution_log(
                    task_id, "recover", f"returned {result.recovered} pairs of stale claims")
            stats = ClaimStats()
            for batch in self._batches(spool.iter_claims(claim, stats)):
                spool.heartbeat(claim)
                before = result.counters
                self._process(spool, batch, result)
                result.batches += 1
                self._absorb(stats, result)
                if task_id:
                    delta = result.counters
                    self.store.tasks.add_counters(task_id, TaskCounters(
                        delta.fetched - before.fetched, delta.saved - before.saved,
                        delta.failed - before.failed, delta.duplicate - before.duplicate))
                if progress is not None:
                    progress(result)
            self._absorb(stats, result)
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
        task = self.store.tasks.create(EmailSource.HARAKA, run_id=run_id,
                                       status=TaskStatus.RUNNING, message="spool ingest started")
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

    def _absorb(self, stats: ClaimStats, result: IngestResult) -> None:
        seen = {p.path for p in result.problems}
        for problem in stats.refused:
            if problem.path in seen:
                continue
            seen.add(problem.path)
            result.refused += 1
            result.add_problem(problem)
        for problem in stats.orphans:
            result.failed += 1
            result.add_problem(problem)
        stats.refused.clear()
        stats.orphans.clear()

    def _batches(self, items: Iterator[Item]) -> Iterator[list[Item]]:
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

    def _process(self, spool: Spool, batch: list[Item], result: IngestResult) -> None:
        test_pause("after_claim")
        result.found += len(batch)
        touched: set[Path] = set()
        loaded: list[_Loaded] = []
        try:
            for item in batch:
                entry = self._load(spool, item, result, touched)
                if entry is not None:
                    loaded.append(entry)
            test_pause("mid_batch")
            resolved = self.saver.resolve_recipients(
                {a for entry in loaded for a in entry.addresses})
            deliveries: list[Delivery] = []
            owners: list[int] = []  # index into loaded, per delivery
            matched: list[list[int]] = []
            for index, entry in enumerate(loaded):
                users: set[int] = set()
                for address in entry.addresses:
                    users |= resolved.get(address, set())
                matched.append(sorted(users))
                received = _received_at(entry.meta)
                prefix = "spool-legacy" if entry.item.legacy else "haraka"
                for user_id in sorted(users):
                    deliveries.append(Delivery(user_id, entry.parsed, EmailSource.HARAKA,
                                               f"{prefix}:{entry.item.stem}", received))
                    owners.append(index)
            outcome = self.saver.save_batch(deliveries) if deliveries else None
        except BaseException:
            for item in batch:
                spool.return_to_inbox(item)
            raise
        test_pause("after_commit")
        errors: dict[int, list[str]] = {}
        if outcome is not None:
            for index, delivery, res in zip(owners, deliveries, outcome.results, strict=True):
                if res.outcome is Outcome.SAVED:
                    result.saved += 1
                elif res.outcome is Outcome.DUPLICATE:
                    result.duplicates += 1
                else:
                    errors.setdefault(index, []).append(f"user {delivery.user_id}: {res.error}")
        half = len(loaded) // 2
        for index, entry in enumerate(loaded):
            if index == half and index:
                test_pause("mid_move")
            try:
                if not matched[index]:
                    spool.move_pair(entry.item, spool.unmatched)
                    touched.add(spool.unmatched)
                    result.unmatched += 1
                elif index in errors:
                    detail = "; ".join(errors[index])
                    spool.move_failed(entry.item, "save_failed", detail, entry.meta)
                    touched.add(spool.failed)
                    result.failed += 1
                    result.add_problem(Problem(entry.item.stem, "save_failed", detail))
                else:
                    folder = spool.processed_folder(entry.meta)
                    spool.move_pair(entry.item, folder)
                    touched.add(folder)
                    result.processed += 1
            except FileNotFoundError:
                result.add_problem(Problem(entry.item.stem, "claim_lost",
                                           "the claim was taken over before the move"))
        if self.fsync:
            for folder in touched:
                fsync_dir(folder)

    def _load(
        self, spool: Spool, item: Item, result: IngestResult, touched: set[Path]
    ) -> _Loaded | None:
        """Read, parse and address one claimed pair; quarantine it and return None if bad."""
        meta: dict[str, Any] | None = None
        reason = detail = ""
        try:
            meta = load_meta(item.meta)
            addresses = _envelope(meta) if not item.legacy and not meta.get("legacy") else None
            raw = read_nofollow(item.eml, self.max_size)
            parsed = parse_message(raw, max_size=self.max_size)
        except ValueError as exc:
            reason, detail = "bad_meta", str(exc)
        except (FileTooLarge, MessageTooLargeError) as exc:
            reason, detail = "too_large", str(exc)
        except MessageParseError as exc:
            reason, detail = exc.reason, exc.detail
        except SpoolError as exc:
            reason, detail = "not_regular", str(exc)
        except FileNotFoundError:
            result.add_problem(Problem(item.stem, "claim_lost", "the claim was taken over"))
            return None
        except OSError as exc:
            reason, detail = "unreadable", str(exc)
        except Exception as exc:  # a parser bug must harm only this message
            log.exception("parsing %s failed", item.stem)
            reason, detail = "parser_error", repr(exc)
        if reason or meta is None:
            self._quarantine(spool, item, reason, detail, meta, result, touched)
            return None
        if addresses is None:
            addresses = _header_recipients(parsed)
        return _Loaded(item, meta, parsed, addresses)

    def _quarantine(
        self,
        spool: Spool,
        item: Item,
        reason: str,
        detail: str,
        meta: dict[str, Any] | None,
        result: IngestResult,
        touched: set[Path],
    ) -> None:
        try:
            spool.move_failed(item, reason, detail, meta)
        except FileNotFoundError:
            result.add_problem(Problem(item.stem, "claim_lost", "the claim was taken over"))
            return
        touched.add(spool.failed)
        result.failed += 1
        result.add_problem(Problem(item.stem, reason, detail[:500]))

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
    service = SpoolIngestService(store, spool_dir, attachment_root, batch_size=batch_size,
                                 max_size=max_size)
    return service.ingest(task_id=task_id)


def _envelope(meta: dict[str, Any]) -> list[str]:
    """Return the normalised envelope recipients of a ``.meta``.

    Raises:
        ValueError: ``rcpt_to`` is missing or not a list of strings.
    """
    rcpt = meta.get("rcpt_to")
    if not isinstance(rcpt, list) or not all(isinstance(a, str) for a in rcpt):
        raise ValueError("the .meta has no rcpt_to list of addresses")
    return [normalize_address(a) for a in rcpt if a.strip()]


_HEADER_PARSER = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def _header_recipients(parsed: ParsedMessage) -> list[str]:
    """Return the header recipients of a legacy file: To, Cc, Bcc, Delivered-To, X-Original-To."""
    found = [*parsed.to, *parsed.cc, *parsed.bcc]
    head = parsed.raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    headers = _HEADER_PARSER.parsebytes(head)
    values = [str(v) for name in _LEGACY_HEADERS[3:] for v in headers.get_all(name) or []]
    found += [addr for _name, addr in email.utils.getaddresses(values) if "@" in addr]
    return sorted({normalize_address(a) for a in found if a})


def _received_at(meta: dict[str, Any]) -> datetime | None:
    value = meta.get("received_at")
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
