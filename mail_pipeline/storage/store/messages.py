"""Stored messages and their attachments (IMAP sync positions: :mod:`.sync_state`).

Saving is batch-first: :meth:`MessageRepository.insert_batch` writes many messages, their
attachment rows and (optionally) the IMAP sync positions they cover in ONE transaction. Each
message is inserted with ``ON CONFLICT DO NOTHING`` on (user, dedup key), so a message that is
already stored, or that a concurrent run stores first, is reported as a duplicate instead of
failing the batch. Every row goes through :func:`~mail_pipeline.storage.store.columns.clean_row` on
its way in (NUL removed, strings cut to their column's length), so a message's odd text never
makes the database refuse it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, select, tuple_
from sqlalchemy import insert as sa_insert
from sqlalchemy.dialects import postgresql, sqlite

from mail_pipeline.errors import NotFoundError
from mail_pipeline.storage.store.base import Repository
from mail_pipeline.storage.store.columns import clean_row, clean_text
from mail_pipeline.storage.store.message_parts import read_parts, streamed, write_parts
from mail_pipeline.storage.store.models import EmailAttachment, EmailMessage
from mail_pipeline.storage.store.sync_state import (
    SyncPosition,
    SyncUpdate,
    apply_sync,
    read_position,
    read_positions,
)


@dataclass(frozen=True)
class NewAttachment:
    """An attachment row to insert; its file is already written under the attachment root."""

    filename: str
    safe_filename: str
    content_type: str
    file_size: int
    file_path: str
    is_image: bool
    is_inline: bool
    content_id: str | None
    sha256: str


@dataclass(frozen=True)
class NewMessage:
    """A message row to insert for one user."""

    user_id: int
    message_id: str
    dedup_key: str
    subject: str
    sender: str
    recipients: list[str]
    cc: list[str]
    received_at: datetime
    sent_at: datetime | None
    raw_content: bytes = field(repr=False)
    html_content: str = field(repr=False)
    text_content: str = field(repr=False)
    source: str
    origin: str
    content_hash: str
    size: int
    attachments: tuple[NewAttachment, ...] = ()


@dataclass(frozen=True)
class StoredMessage:
    """A summary of a stored message (what tests and the CLI look at)."""

    id: int
    user_id: int
    message_id: str
    dedup_key: str
    subject: str
    sender: str
    recipients: list[str]
    received_at: datetime
    source: str
    origin: str
    size: int
    attachment_paths: tuple[str, ...]


class MessageRepository(Repository):
    """Messages, attachments and IMAP sync state."""

    def existing_keys(self, keys: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
        """Return the (user id, dedup key) pairs among ``keys`` that are already stored."""
        wanted = list(set(keys))
        found: set[tuple[int, str]] = set()
        with self._transaction() as session:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                stmt = select(EmailMessage.user_id, EmailMessage.dedup_key).where(
                    tuple_(EmailMessage.user_id, EmailMessage.dedup_key).in_(chunk)
                )
                found.update(session.execute(stmt).all())
        return found

    def insert_batch(
        self, messages: Sequence[NewMessage], sync: Sequence[SyncUpdate] = ()
    ) -> list[int | None]:
        """Insert ``messages`` and apply ``sync`` in one transaction.

        Returns:
            For each message, in order, the new row id, or None when it was a duplicate
            (already stored for that user, or earlier in the same batch).
        """
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        now = self._now()
        with self._transaction() as session:
            ids: list[int | None] = []
            if messages:
                # One multi-row statement per batch (SQLAlchemy's "insertmanyvalues"); rows
                # that hit the unique key return nothing and are matched back by their key.
                table = cast(Table, EmailMessage.__table__)
                stmt = (
                    insert(table)
                    .on_conflict_do_nothing(index_elements=["user_id", "dedup_key"])
                    .returning(table.c.id, table.c.user_id, table.c.dedup_key)
                )
                params = [
                    clean_row(
                        EmailMessage,
                        {
                            "user_id": msg.user_id,
                            "message_id": msg.message_id,
                            "dedup_key": msg.dedup_key,
                            "subject": msg.subject,
                            "sender": msg.sender,
                            "recipients": msg.recipients,
                            "cc": msg.cc,
                            "received_at": msg.received_at,
                            "sent_at": msg.sent_at,
                            # big parts are written apart after the insert (_apart)
                            "raw_content": b"" if streamed(msg.raw_content) else msg.raw_content,
                            "html_content": "" if streamed(msg.html_content) else msg.html_content,
                            "text_content": "" if streamed(msg.text_content) else msg.text_content,
                            "status": "FETCHED",
                            "source": msg.source,
                            "origin": msg.origin,
                            "content_hash": msg.content_hash,
                            "size": msg.size,
                            "created_at": now,
                        },
                    )
                    for msg in messages
                ]
                new_ids = {
                    (user_id, key): pk for pk, user_id, key in session.execute(stmt, params).all()
                }
                seen: set[tuple[int, str]] = set()
                for row in params:  # the keys as stored, i.e. as cleaned
                    key = (row["user_id"], row["dedup_key"])
                    ids.append(None if key in seen else new_ids.get(key))
                    seen.add(key)
                for msg, new_id in zip(messages, ids, strict=True):
                    if new_id is not None and (parts := _apart(msg)):
                        write_parts(session, new_id, parts)
            rows = [
                clean_row(
                    EmailAttachment,
                    {
                        "user_id": msg.user_id,
                        "message_id": new_id,
                        "filename": att.filename,
                        "safe_filename": att.safe_filename,
                        "content_type": att.content_type,
                        "file_size": att.file_size,
                        "file_path": att.file_path,
                        "is_image": att.is_image,
                        "is_inline": att.is_inline,
                        "content_id": att.content_id,
                        "sha256": att.sha256,
                        "created_at": now,
                    },
                )
                for msg, new_id in zip(messages, ids, strict=True)
                if new_id is not None
                for att in msg.attachments
            ]
            if rows:
                session.execute(sa_insert(cast(Table, EmailAttachment.__table__)), rows)
            for update in sync:
                apply_sync(session, update, now)
        return ids

    def update_sync(self, update: SyncUpdate) -> None:
        """Store one folder's sync position on its own (when a batch had no new messages)."""
        with self._transaction() as session:
            apply_sync(session, update, self._now())

    def sync_position(self, user_id: int, folder: str) -> SyncPosition | None:
        """Return the stored sync position of ``folder`` of ``user_id``, or None."""
        with self._reading() as session:
            return read_position(session, user_id, folder)

    def sync_positions(self, user_id: int) -> list[SyncPosition]:
        """Return every folder's sync position of ``user_id``, by folder name."""
        with self._reading() as session:
            return read_positions(session, user_id)

    def count(self, user_id: int | None = None) -> int:
        """Return how many messages are stored (for one user, or in all)."""
        stmt = select(func.count()).select_from(EmailMessage)
        if user_id is not None:
            stmt = stmt.where(EmailMessage.user_id == user_id)
        with self._reading() as session:
            return int(session.scalar(stmt) or 0)

    def count_above(self, low: int, high: int) -> tuple[int, int, int | None]:
        """Return how many messages have an id above ``low``, how many above ``high``, and
        the highest id above the lower of the two (None when there is none).

        One statement, so both counts come from one snapshot, and it reads only the primary
        key's range above ``min(low, high)``.
        """
        above_low, above_high = EmailMessage.id > low, EmailMessage.id > high
        stmt = select(
            func.count().filter(above_low),
            func.count().filter(above_high),
            func.max(EmailMessage.id),
        ).where(EmailMessage.id > min(low, high))
        with self._reading() as session:
            n_low, n_high, top = session.execute(stmt).one()
        return int(n_low or 0), int(n_high or 0), None if top is None else int(top)

    def summaries(self, user_id: int | None = None, *, limit: int = 1000) -> list[StoredMessage]:
        """Return stored messages (one user's, or all), oldest first by id."""
        stmt = select(EmailMessage).order_by(EmailMessage.id).limit(limit)
        if user_id is not None:
            stmt = stmt.where(EmailMessage.user_id == user_id)
        with self._reading() as session:
            out = []
            for m in session.scalars(stmt):
                paths = tuple(a.file_path for a in m.attachments)
                out.append(
                    StoredMessage(
                        m.id,
                        m.user_id,
                        m.message_id,
                        m.dedup_key,
                        m.subject,
                        m.sender,
                        list(m.recipients),
                        m.received_at,
                        m.source,
                        m.origin,
                        m.size,
                        paths,
                    )
                )
            return out

    def get_content(self, message_pk: int) -> dict[str, Any]:
        """Return the stored contents of one message: raw bytes, text, html, attachments."""
        with self._reading() as session:
            m = session.get(EmailMessage, message_pk)
            if m is None:
                raise NotFoundError(f"no message with id {message_pk}")
            apart = read_parts(session, message_pk)
            return {
                "raw_content": apart.get("raw", m.raw_content),
                "text_content": apart.get("text", m.text_content),
                "html_content": apart.get("html", m.html_content),
                "sent_at": m.sent_at,
                "cc": list(m.cc),
                "content_hash": m.content_hash,
                "attachments": [
                    {
                        "filename": a.filename,
                        "safe_filename": a.safe_filename,
                        "content_type": a.content_type,
                        "file_size": a.file_size,
                        "file_path": a.file_path,
                        "is_image": a.is_image,
                        "is_inline": a.is_inline,
                        "content_id": a.content_id,
                        "sha256": a.sha256,
                    }
                    for a in m.attachments
                ],
            }

    def attachment_paths(self) -> set[str]:
        """Return every attachment file path the store references (relative to the root)."""
        with self._reading() as session:
            return set(session.scalars(select(EmailAttachment.file_path)))


def _apart(msg: NewMessage) -> dict[str, bytes | str]:
    """Return the parts of ``msg`` big enough to be stored apart from its row (name -> value;
    bodies without NUL characters, like every text column)."""
    values: dict[str, bytes | str] = {
        "raw": msg.raw_content,
        "html": msg.html_content,
        "text": msg.text_content,
    }
    return {
        name: value if isinstance(value, bytes) else clean_text(value)
        for name, value in values.items()
        if streamed(value)
    }
