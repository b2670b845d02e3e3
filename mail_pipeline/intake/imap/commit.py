"""One parsed batch into the store: commit its messages with the folder's cursor.

The batch's messages and the folder's new cursor are stored in ONE transaction
(:meth:`~mail_pipeline.storage.save_service.EmailSaveService.save_batch` with ``sync=``), so
the cursor is never ahead of what is stored. A message that does not parse, that the store
refuses, or that is over the account's ``max_message_bytes`` harms only itself: its UID and
reason go into the sync state and the cursor moves past it. A fault of the environment (a
store outage, a full or read-only attachment root) raises, and then nothing of the batch is
committed and the cursor stays. The messages were parsed by
:mod:`~mail_pipeline.intake.imap.parse_stage` (here or in a worker process).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from mail_pipeline.errors import MessageTooLargeError
from mail_pipeline.intake.imap.parse_stage import ParsedBatch
from mail_pipeline.intake.imap.sync import Batch
from mail_pipeline.intake.imap.wire import uid_set
from mail_pipeline.mime.parse_pool import ParseFailure
from mail_pipeline.storage.deliveries import Delivery, Outcome
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import EmailSource, MailStore, SyncUpdate, TaskCounters

__all__ = ["BatchOutcome", "FolderTarget", "commit_batch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FolderTarget:
    """Where a batch goes: the user, the folder as examined, and the sync's clock reading."""

    user_id: int
    username: str
    folder: str
    uidvalidity: int
    now: datetime


@dataclass(frozen=True)
class BatchOutcome:
    """What committing one batch did.

    ``stored``: the UIDs now in the store (saved or duplicates), for the post-action.
    ``counters``: the batch's increment (``failed`` counts every kind of failure).
    ``failed``: (uid, reason) of each message not stored, by UID. ``too_large``: how many of
    them were over the limit (not fetched, or bigger than their RFC822.SIZE said).
    """

    stored: list[int]
    counters: TaskCounters
    failed: list[tuple[int, str]]
    too_large: int


def commit_batch(
    save_service: EmailSaveService,
    store: MailStore,
    target: FolderTarget,
    chunk: Batch,
    batch: ParsedBatch,
    *,
    last: int,
    limit: int,
) -> BatchOutcome:
    """Commit the parsed messages of ``batch`` (the fetched part of ``chunk``) with the cursor
    ``last`` and the batch's failed and too-large UIDs.

    Returns:
        The :class:`BatchOutcome`.

    Raises:
        SQLAlchemyError: the store is unreachable (nothing of the batch is committed).
        StorageUnavailable: the attachment root cannot take files (likewise).
    """
    deliveries: list[Delivery] = []
    delivered_uids: list[int] = []
    failures: list[tuple[int, str]] = []
    too_large = [*chunk.too_large, *batch.too_large]
    for message, parsed in batch.parsed:
        if isinstance(parsed, ParseFailure):
            if parsed.unexpected:  # a parser bug: it harms only this message
                log.error(
                    "%s: parsing UID %d failed: %s\n%s",
                    target.username,
                    message.uid,
                    parsed.error,
                    parsed.traceback,
                )
                failures.append((message.uid, f"parse: parser_error: {parsed.error}"))
            else:
                failures.append((message.uid, f"parse: {parsed.error}"))
            continue
        deliveries.append(
            Delivery(
                user_id=target.user_id,
                parsed=parsed,
                source=EmailSource.IMAP,
                origin=f"imap:{target.folder}:{target.uidvalidity}:{message.uid}",
                received_at=message.internaldate,
            )
        )
        delivered_uids.append(message.uid)
    gone = len(chunk.uids) - len(chunk.too_large) - batch.fetched
    if gone:  # expunged between SEARCH and FETCH: nothing to keep
        log.info(
            "%s: folder %r: %d of %d UIDs were gone at FETCH",
            target.username,
            target.folder,
            gone,
            len(chunk.uids),
        )
    too_large.sort()
    if too_large:
        log.warning(
            "%s: folder %r: %d message(s) over the limit of %d bytes left on the server: UIDs %s",
            target.username,
            target.folder,
            len(too_large),
            limit,
            uid_set([uid for uid, _size in too_large]),
        )

    sync = SyncUpdate(
        target.user_id,
        target.folder,
        target.uidvalidity,
        last,
        target.now,
        tuple(failures),
        tuple((uid, size, limit) for uid, size in too_large),
    )
    outcome = save_service.save_batch(deliveries, sync=[sync])
    stored: list[int] = []
    refused: list[tuple[int, str]] = []
    for uid, res in zip(delivered_uids, outcome.results, strict=True):
        if res.outcome is Outcome.FAILED:
            refused.append((uid, f"save: {res.error}"))
        else:
            stored.append(uid)
    if refused:  # record them too; the cursor is already past them
        store.messages.update_sync(
            SyncUpdate(
                target.user_id, target.folder, target.uidvalidity, last, target.now, tuple(refused)
            )
        )
    counters = TaskCounters(
        fetched=batch.fetched,
        saved=outcome.saved,
        failed=outcome.failed + len(failures) + len(too_large),
        duplicate=outcome.duplicates,
    )
    oversized = [(uid, str(MessageTooLargeError(size, limit))) for uid, size in too_large]
    return BatchOutcome(stored, counters, sorted((*failures, *refused, *oversized)), len(too_large))
