"""The execution log of an EmailTask: entries cleaned, the newest MAX_LOG_ENTRIES kept."""

from __future__ import annotations

from datetime import UTC, datetime

from mail_pipeline.storage.store import EmailSource, MailStore
from mail_pipeline.storage.store.columns import column_length
from mail_pipeline.storage.store.models import EmailTask
from mail_pipeline.storage.store.task_log import MAX_LOG_ENTRIES, error_text, log_entry


def test_the_log_is_bounded(store: MailStore) -> None:
    task = store.tasks.create(EmailSource.IMAP)
    for i in range(MAX_LOG_ENTRIES + 5):
        store.tasks.add_execution_log(task.task_id, "step", f"entry {i}")
    snap = store.tasks.get(task.task_id)
    assert len(snap.log) == MAX_LOG_ENTRIES
    assert snap.log[-1]["message"] == f"entry {MAX_LOG_ENTRIES + 4}"
    assert snap.details["log_truncated"] == 6


def test_entries_and_error_text_are_cleaned() -> None:
    entry = log_entry(datetime(2026, 1, 2, tzinfo=UTC), "st\x00ep", "a\x00b", "WARNING")
    assert entry == {
        "timestamp": "2026-01-02T00:00:00+00:00",
        "step": "step",
        "message": "ab",
        "level": "WARNING",
    }
    # error_message is unbounded text: NUL goes, nothing else is cut
    assert column_length(EmailTask, "error_message") is None
    assert error_text("x\x00" * 5000) == "x" * 5000
