"""Counting messages by their primary key, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete

from mail_pipeline.storage.store import MailStore, NewMessage
from mail_pipeline.storage.store.models import EmailMessage


def _message(user_id: int, n: int) -> NewMessage:
    return NewMessage(
        user_id=user_id,
        message_id=f"m{n}@x",
        dedup_key=f"mid:m{n}@x",
        subject=f"s{n}",
        sender="a@example.net",
        recipients=["alice@example.org"],
        cc=[],
        received_at=datetime(2026, 9, 4, tzinfo=UTC),
        sent_at=None,
        raw_content=b"raw",
        html_content="",
        text_content="t",
        source="IMAP_EMAIL_FETCH",
        origin="",
        content_hash="0" * 64,
        size=3,
    )


def test_count_above_counts_both_ranges_at_once(store: MailStore) -> None:
    alice = store.users.add("alice", "alice@example.org").id
    assert store.messages.count_above(0, 0) == (0, 0, None)
    ids = [pk for pk in store.messages.insert_batch([_message(alice, n) for n in range(6)]) if pk]
    first, top = ids[0], ids[-1]
    assert store.messages.count_above(0, 0) == (6, 6, top)
    assert store.messages.count_above(first, ids[3]) == (5, 2, top)
    assert store.messages.count_above(top, top) == (0, 0, None)
    # A duplicate consumes an id on PostgreSQL but adds no row, so it is never counted.
    assert store.messages.insert_batch([_message(alice, 0), _message(alice, 6)])[0] is None
    n_low, n_high, new_top = store.messages.count_above(top, top)
    assert (n_low, n_high) == (1, 1) and new_top is not None and new_top > top
    # Deleting old rows leaves the counts above them as they were.
    with store.engine.begin() as connection:
        connection.execute(delete(EmailMessage).where(EmailMessage.id <= ids[2]))
    assert store.messages.count_above(ids[3], new_top) == (3, 0, new_top)
