"""Counting messages by their primary key, on both databases."""

from __future__ import annotations

from sqlalchemy import delete

from mail_pipeline.storage.store import MailStore
from mail_pipeline.storage.store.models import EmailMessage
from mail_pipeline_tests.fixtures.message_rows import message_row, save_messages


def test_count_above_counts_both_ranges_at_once(store: MailStore) -> None:
    alice = store.users.add("alice", "alice@example.org").id
    assert store.messages.count_above(0, 0) == (0, 0, None)
    ids = save_messages(store, alice, range(6))
    first, top = ids[0], ids[-1]
    assert store.messages.count_above(0, 0) == (6, 6, top)
    assert store.messages.count_above(first, ids[3]) == (5, 2, top)
    assert store.messages.count_above(top, top) == (0, 0, None)
    # A duplicate consumes an id on PostgreSQL but adds no row, so it is never counted.
    batch = [message_row(alice, 0), message_row(alice, 6)]
    assert store.messages.insert_batch(batch)[0] is None
    n_low, n_high, new_top = store.messages.count_above(top, top)
    assert (n_low, n_high) == (1, 1) and new_top is not None and new_top > top
    # Deleting old rows leaves the counts above them as they were.
    with store.engine.begin() as connection:
        connection.execute(delete(EmailMessage).where(EmailMessage.id <= ids[2]))
    assert store.messages.count_above(ids[3], new_top) == (3, 0, new_top)
