"""IMAP sync positions: how far each folder of each user has been fetched, and what failed.

A position is stored with the messages it covers, in the same transaction
(:meth:`~mail_pipeline.storage.store.messages.MessageRepository.insert_batch` calls
:func:`apply_sync`), so a crash never moves a cursor past a message that is not stored. The
cursor never moves backwards (two overlapping runs), except for a new UIDVALIDITY, which makes
the old UIDs meaningless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mail_pipeline.storage.store.columns import clean_json
from mail_pipeline.storage.store.models import ImapSyncState

# How many failed UIDs a folder's sync state remembers (the newest ones).
MAX_FAILED_UIDS = 200
# A failed UID's reason is kept to this many characters (it is a JSON value, not a column).
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class SyncUpdate:
    """The new sync position of one IMAP folder, stored with the messages it covers.

    ``failed_uids`` are (uid, reason) of messages fetched but not stored; ``too_large`` are
    (uid, size, limit) of messages left on the server for their size. Both are kept in the
    row's ``failed_uids`` list, the latter as ``{"uid", "reason": "too_large", "size",
    "limit"}``.
    """

    user_id: int
    folder: str
    uidvalidity: int
    last_uid: int
    fetched_at: datetime
    failed_uids: tuple[tuple[int, str], ...] = ()
    too_large: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True)
class SyncPosition:
    """A read-only copy of an ``imap_sync_state`` row.

    ``last_fetch_at`` is when the position was last written: a stored batch, a first sync or a
    new UIDVALIDITY. A check that finds nothing new leaves the row as it is; the mailbox's
    last successful check is its mailbox state's ``last_success_at``.
    """

    user_id: int
    folder: str
    uidvalidity: int
    last_uid: int
    last_fetch_at: datetime | None
    failed_uids: list[dict[str, Any]]


def _position(row: ImapSyncState) -> SyncPosition:
    return SyncPosition(
        row.user_id,
        row.folder,
        row.uidvalidity,
        row.last_uid,
        row.last_fetch_at,
        list(row.failed_uids or []),
    )


def read_position(session: Session, user_id: int, folder: str) -> SyncPosition | None:
    """Return the stored sync position of ``folder`` of ``user_id``, or None."""
    row = session.scalars(
        select(ImapSyncState).where(
            ImapSyncState.user_id == user_id, ImapSyncState.folder == folder
        )
    ).one_or_none()
    return None if row is None else _position(row)


def read_positions(session: Session, user_id: int) -> list[SyncPosition]:
    """Return every folder's sync position of ``user_id``, by folder name."""
    rows = session.scalars(
        select(ImapSyncState).where(ImapSyncState.user_id == user_id).order_by(ImapSyncState.folder)
    )
    return [_position(r) for r in rows]


def apply_sync(session: Session, update: SyncUpdate, now: datetime) -> None:
    """Store ``update`` in ``session``'s transaction (the folder's row is locked first)."""
    row = session.scalars(
        select(ImapSyncState)
        .where(ImapSyncState.user_id == update.user_id, ImapSyncState.folder == update.folder)
        .with_for_update()
    ).one_or_none()
    failed: list[dict[str, Any]] = [
        {"uid": uid, "reason": reason[:MAX_REASON_CHARS]} for uid, reason in update.failed_uids
    ]
    failed += [
        {"uid": uid, "reason": "too_large", "size": size, "limit": limit}
        for uid, size, limit in update.too_large
    ]
    failed.sort(key=lambda entry: int(entry["uid"]))
    failed = clean_json(failed)
    if row is None:
        session.add(
            ImapSyncState(
                user_id=update.user_id,
                folder=update.folder,
                uidvalidity=update.uidvalidity,
                last_uid=update.last_uid,
                last_fetch_at=update.fetched_at,
                failed_uids=failed[-MAX_FAILED_UIDS:],
                updated_at=now,
            )
        )
        return
    if row.uidvalidity != update.uidvalidity:
        # A new UIDVALIDITY: the old UIDs mean nothing any more.
        row.uidvalidity = update.uidvalidity
        row.last_uid = update.last_uid
        row.failed_uids = failed[-MAX_FAILED_UIDS:]
    else:
        # Never move the cursor backwards (two overlapping runs).
        row.last_uid = max(row.last_uid, update.last_uid)
        if failed:
            row.failed_uids = [*(row.failed_uids or []), *failed][-MAX_FAILED_UIDS:]
    row.last_fetch_at = update.fetched_at
    row.updated_at = now
