"""The save service: parsed messages in, stored messages out, once per user.

Both intake paths (the Haraka spool and IMAP) end here. A batch of deliveries is stored in one
transaction:

1. each delivery gets a dedup key: ``mid:<Message-ID>``, or ``sha256:<content hash>`` when the
   message has no usable Message-ID (the seed hashed subject+sender+date, so a message without
   a Date header was stored again on every run);
2. deliveries already stored, or repeated inside the batch, are counted as duplicates;
3. attachment files of the new ones are written, and made durable in one step per batch,
   BEFORE the commit;
4. the rows and the optional IMAP sync positions are committed together; a row that a
   concurrent run committed first comes back as a duplicate and its files are removed; if the
   transaction fails every file written for it is removed.

When a batch fails for any reason that may belong to one message (a value the database
refuses, a ``ValueError`` or ``TypeError`` from a driver, an attachment name the file system
refuses, ...), the batch is retried message by message so that one bad message harms only
itself: it comes back FAILED with its reason. A fault of the environment is never blamed on a
message: a lost or refusing database (``OperationalError``, ``InterfaceError``, an invalidated
connection) and an attachment root that cannot take files
(:class:`~mail_pipeline.errors.StorageUnavailable`: full, read-only, no permission) are raised
with nothing of the failed transaction stored, so the caller puts the work back and retries it
later. Text is made to fit the columns by the store (:mod:`mail_pipeline.storage.store.columns`).
Deliveries and their outcomes are :mod:`mail_pipeline.storage.deliveries`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from mail_pipeline.errors import EnvironmentFault, SaveError
from mail_pipeline.mime import ParsedMessage
from mail_pipeline.storage.attachments import AttachmentStorage, safe_filename
from mail_pipeline.storage.deliveries import (
    BatchResult,
    Delivery,
    DeliveryResult,
    Outcome,
    dedup_key,
)
from mail_pipeline.storage.store import (
    EmailSource,
    MailStore,
    NewAttachment,
    NewMessage,
    SyncUpdate,
)

log = logging.getLogger(__name__)
#: A failed delivery's reason is kept to this many characters (it is logged and reported).
MAX_REASON_CHARS = 500


def is_environment_fault(exc: BaseException) -> bool:
    """Return True when ``exc`` says nothing can be stored now, whatever the message.

    That is an :class:`~mail_pipeline.errors.EnvironmentFault` (the attachment root is full,
    read-only, ...) or a database that is unreachable or refuses work for its own reasons
    (``OperationalError``: connection lost, disk full, read-only; ``InterfaceError``; an
    invalidated connection). Anything else may belong to one message.
    """
    if isinstance(exc, EnvironmentFault | OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class EmailSaveService:
    """Stores parsed messages and their attachments, deduplicated per user."""

    def __init__(self, store: MailStore, attachments: AttachmentStorage) -> None:
        self.store = store
        self.attachments = attachments

    # --- recipients ----------------------------------------------------------------------

    def find_users_by_recipients(self, addresses: Iterable[str]) -> list[int]:
        """Return the ids of EVERY active user that any of ``addresses`` reaches, sorted.

        Matching is case-insensitive over user e-mails and active aliases (the seed matched
        case-sensitively and stopped at the first user).
        """
        found: set[int] = set()
        for ids in self.store.users.user_ids_by_address(addresses).values():
            found |= ids
        return sorted(found)

    def resolve_recipients(self, addresses: Iterable[str]) -> dict[str, set[int]]:
        """Map each normalised address to the active users it reaches (one query per call)."""
        return self.store.users.user_ids_by_address(addresses)

    # --- saving --------------------------------------------------------------------------

    def save(
        self,
        user_id: int,
        parsed: ParsedMessage,
        *,
        source: EmailSource,
        origin: str = "",
        received_at: datetime | None = None,
    ) -> DeliveryResult:
        """Store one message for one user. See :meth:`save_batch`.

        Raises:
            SaveError: the message could not be stored.
        """
        result = self.save_batch([Delivery(user_id, parsed, source, origin, received_at)])
        only = result.results[0]
        if only.outcome is Outcome.FAILED:
            raise SaveError(only.error)
        return only

    def save_batch(
        self, deliveries: Sequence[Delivery], sync: Sequence[SyncUpdate] = ()
    ) -> BatchResult:
        """Store ``deliveries`` and the ``sync`` positions they cover in one transaction.

        Returns:
            One :class:`DeliveryResult` per delivery, in order. A delivery that cannot be
            stored on its own, whatever the error (a value the database refuses, an
            attachment name the file system refuses, a driver's ``ValueError``), is FAILED
            with the reason; the others are still stored and ``sync`` still applied.

        Raises:
            StorageUnavailable: the attachment root cannot take files (full, read-only, no
                permission); ``sync`` is not applied and the failed transaction left nothing
                (deliveries stored one by one before the fault stay stored: a retry finds
                them as duplicates).
            SQLAlchemyError: the database is unreachable or refuses work (same guarantees).
        """
        results: list[DeliveryResult | None] = [None] * len(deliveries)
        seen: set[tuple[int, str]] = set()
        existing = self.store.messages.existing_keys(d.key for d in deliveries)
        pending: list[int] = []
        for i, delivery in enumerate(deliveries):
            if delivery.key in existing or delivery.key in seen:
                results[i] = DeliveryResult(Outcome.DUPLICATE)
            else:
                seen.add(delivery.key)
                pending.append(i)
        try:
            self._commit(deliveries, pending, sync, results)
        except Exception as exc:
            if is_environment_fault(exc):
                raise
            log.warning("batch of %d failed (%s); saving one by one", len(pending), _describe(exc))
            for i in pending:
                try:
                    self._commit(deliveries, [i], (), results)
                except Exception as one:
                    if is_environment_fault(one):
                        raise
                    log.warning("delivery %d of the batch failed: %s", i, _describe(one))
                    results[i] = DeliveryResult(Outcome.FAILED, error=_describe(one))
            if sync:
                self._commit(deliveries, [], sync, results)
        return BatchResult(
            [r if r is not None else DeliveryResult(Outcome.FAILED, error="lost") for r in results]
        )

    def _commit(
        self,
        deliveries: Sequence[Delivery],
        indexes: list[int],
        sync: Sequence[SyncUpdate],
        results: list[DeliveryResult | None],
    ) -> None:
        rows: list[NewMessage] = []
        written: list[list[str]] = []
        committed = False
        try:
            kept: list[int] = []
            for i in indexes:
                try:
                    row, paths = self._prepare(deliveries[i])
                except Exception as exc:
                    if is_environment_fault(exc):
                        raise
                    results[i] = DeliveryResult(Outcome.FAILED, error=_describe(exc))
                    continue
                rows.append(row)
                written.append(paths)
                kept.append(i)
            self.attachments.sync(p for paths in written for p in paths)
            ids = self.store.messages.insert_batch(rows, sync)
            committed = True
        finally:
            if not committed:
                self.attachments.remove(p for paths in written for p in paths)
        for i, new_id, paths in zip(kept, ids, written, strict=True):
            if new_id is None:  # a concurrent run stored it first
                self.attachments.remove(paths)
                results[i] = DeliveryResult(Outcome.DUPLICATE)
            else:
                results[i] = DeliveryResult(Outcome.SAVED, message_pk=new_id)

    def _prepare(self, delivery: Delivery) -> tuple[NewMessage, list[str]]:
        parsed = delivery.parsed
        paths: list[str] = []
        attachments: list[NewAttachment] = []
        try:
            for att in parsed.attachments:
                safe = safe_filename(att.filename, att.content_type)
                # decoded a chunk at a time into the file: never whole in memory
                path = self.attachments.write(delivery.user_id, safe, att.chunks(), sync=False)
                paths.append(path)
                attachments.append(
                    NewAttachment(
                        filename=att.filename or safe,
                        safe_filename=safe,
                        content_type=att.content_type,
                        file_size=att.size,
                        file_path=path,
                        is_image=att.content_type.startswith("image/"),
                        is_inline=att.inline,
                        content_id=att.content_id or None,
                        sha256=att.sha256,
                    )
                )
        except BaseException:
            self.attachments.remove(paths)
            raise
        received = delivery.received_at or parsed.date or self.store.clock()
        row = NewMessage(
            user_id=delivery.user_id,
            message_id=parsed.message_id or "",
            dedup_key=dedup_key(parsed),
            subject=parsed.subject,
            sender=parsed.sender,
            recipients=list(parsed.to),
            cc=list(parsed.cc),
            received_at=received,
            sent_at=parsed.date,
            raw_content=parsed.raw,
            html_content=parsed.html,
            text_content=parsed.text,
            source=delivery.source.value,
            origin=delivery.origin,
            content_hash=parsed.content_hash,
            size=parsed.size,
            attachments=tuple(attachments),
        )
        return row, paths


def _describe(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:MAX_REASON_CHARS]
