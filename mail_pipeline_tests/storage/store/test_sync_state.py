"""IMAP sync positions: one per user and folder, never moved backwards, reset by UIDVALIDITY."""

from __future__ import annotations

from datetime import UTC, datetime

from mail_pipeline.storage.store import MailStore, SyncUpdate
from mail_pipeline.storage.store.sync_state import MAX_FAILED_UIDS

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _update(user_id: int, last_uid: int, uidvalidity: int = 7, **kw: object) -> SyncUpdate:
    return SyncUpdate(user_id, "INBOX", uidvalidity, last_uid, NOW, **kw)  # type: ignore[arg-type]


def test_the_cursor_never_moves_backwards_and_failed_uids_accumulate(store: MailStore) -> None:
    user = store.users.add("ann", "ann@example.org")
    store.messages.update_sync(_update(user.id, 10, failed_uids=((4, "bad\x00 mail"),)))
    store.messages.update_sync(_update(user.id, 6, too_large=((9, 500, 100),)))
    position = store.messages.sync_position(user.id, "INBOX")
    assert position is not None
    assert (position.uidvalidity, position.last_uid) == (7, 10)
    assert position.failed_uids == [
        {"uid": 4, "reason": "bad mail"},
        {"uid": 9, "reason": "too_large", "size": 500, "limit": 100},
    ]
    assert [p.folder for p in store.messages.sync_positions(user.id)] == ["INBOX"]


def test_a_new_uidvalidity_starts_the_folder_over(store: MailStore) -> None:
    user = store.users.add("bob", "bob@example.org")
    store.messages.update_sync(_update(user.id, 50, failed_uids=((3, "bad"),)))
    store.messages.update_sync(_update(user.id, 2, uidvalidity=8))
    position = store.messages.sync_position(user.id, "INBOX")
    assert position is not None
    assert (position.uidvalidity, position.last_uid, position.failed_uids) == (8, 2, [])


def test_only_the_newest_failed_uids_are_kept(store: MailStore) -> None:
    user = store.users.add("cat", "cat@example.org")
    failed = tuple((uid, "bad") for uid in range(1, MAX_FAILED_UIDS + 11))
    store.messages.update_sync(_update(user.id, MAX_FAILED_UIDS + 10, failed_uids=failed))
    position = store.messages.sync_position(user.id, "INBOX")
    assert position is not None
    assert len(position.failed_uids) == MAX_FAILED_UIDS
    assert position.failed_uids[0]["uid"] == 11
