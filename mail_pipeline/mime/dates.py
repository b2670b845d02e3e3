"""Read the Date field into an aware UTC datetime (flanker has no date parser)."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

__all__ = ["parse_date"]


def parse_date(value: str | None, notes: list[str]) -> datetime | None:
    """Return the Date as an aware UTC datetime, None when missing or unparseable.

    Parsed by :func:`email.utils.parsedate_to_datetime`; a ``-0000`` zone is read as UTC (RFC
    5322). An unparseable or out-of-range date adds a note to ``notes``. Never raises.
    """
    if value is None:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        parsed = None
    if parsed is None:
        notes.append(f"date: unparseable Date header {value[:100]!r}")
        return None
    if parsed.tzinfo is None:  # "-0000": no zone information; RFC 5322 says read it as UTC
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        notes.append(f"date: Date header out of range {value[:100]!r}")
        return None
