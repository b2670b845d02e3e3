"""Read the Message-ID field: the identifier without its angle brackets."""

from __future__ import annotations

__all__ = ["message_id"]

_MAX_MESSAGE_ID = 900


def message_id(value: str | None) -> str | None:
    """Return the Message-ID without <> and white space, None when missing or unusable.

    ``value`` is the field's latin-1 view; raw 8-bit bytes must be UTF-8. An identifier with
    white space inside or longer than 900 characters is unusable. Never raises.
    """
    if value is None:
        return None
    value = value.strip()
    start = value.find("<")
    if start >= 0:
        stop = value.find(">", start + 1)
        value = value[start + 1 : stop if stop >= 0 else len(value)].strip()
    if not value or len(value) > _MAX_MESSAGE_ID or any(ch.isspace() for ch in value):
        return None
    if not value.isascii():
        try:
            value = value.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return None
    return value
