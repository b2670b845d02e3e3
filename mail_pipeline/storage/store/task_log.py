"""An EmailTask's execution log and error text, as its row stores them.

The log lives in the task's ``details`` JSON, capped so a long-running task cannot grow its row
forever; error text is cleaned and cut to the ``error_message`` column.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mail_pipeline.storage.store.columns import clean_text, column_length
from mail_pipeline.storage.store.models import EmailTask

# The execution log of a task is capped so a long-running task cannot grow a row forever.
MAX_LOG_ENTRIES = 500


def error_text(error: str) -> str:
    """Return ``error`` as ``error_message`` holds it (NUL removed, cut to the column)."""
    return clean_text(error, column_length(EmailTask, "error_message"))


def log_entry(now: datetime, step: str, message: str, level: str) -> dict[str, Any]:
    """Return one execution-log entry, its text cleaned (NUL removed)."""
    return {
        "timestamp": now.isoformat(),
        "step": clean_text(step),
        "message": clean_text(message),
        "level": level,
    }


def append_log(row: EmailTask, entry: dict[str, Any]) -> None:
    """Append ``entry`` to ``row``'s log, keeping the newest :data:`MAX_LOG_ENTRIES`."""
    details = dict(row.details or {})
    log = [*details.get("log", []), entry]
    if len(log) > MAX_LOG_ENTRIES:
        details["log_truncated"] = int(details.get("log_truncated", 0)) + len(log) - MAX_LOG_ENTRIES
        log = log[-MAX_LOG_ENTRIES:]
    details["log"] = log
    row.details = details  # reassign: JSON columns do not track in-place changes
