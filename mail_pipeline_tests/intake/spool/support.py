"""Helpers shared by the spool tests that use a store."""

from __future__ import annotations

from collections import Counter

from mail_pipeline.storage.store import MailStore


def stored(store: MailStore) -> Counter[tuple[int, str]]:
    """(user id, message id) -> how many rows."""
    return Counter((m.user_id, m.message_id) for m in store.messages.summaries(limit=100000))
