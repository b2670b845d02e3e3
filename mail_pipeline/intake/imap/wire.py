"""The IMAP wire format the fetcher reads and writes: pure functions, no I/O.

The bulk ``UID FETCH`` commands go through imaplib, which hands back its raw response data;
this module builds their UID sets and parses what comes back (the commands themselves are
sent by :mod:`mail_pipeline.intake.imap.sync`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from imapclient.datetime_util import parse_to_datetime

from mail_pipeline.errors import ImapProtocolError

__all__ = [
    "BODY_ITEMS",
    "SIZE_ITEMS",
    "RawMessage",
    "parse_fetch_response",
    "parse_size_response",
    "uid_set",
]

#: The items of a body FETCH: ``BODY.PEEK[]``, never ``RFC822`` (which sets ``\Seen``).
BODY_ITEMS = "(UID INTERNALDATE BODY.PEEK[])"
#: The items of a size FETCH.
SIZE_ITEMS = "(UID RFC822.SIZE)"

_RFC822_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)", re.IGNORECASE)
_FETCH_START = re.compile(rb"^\d+ FETCH ", re.IGNORECASE)
_BODY_LITERAL = re.compile(rb"BODY\[\] \{\d+\+?\}$", re.IGNORECASE)
_UID = re.compile(rb"\bUID (\d+)", re.IGNORECASE)
_INTERNALDATE = re.compile(rb'\bINTERNALDATE "([^"]*)"', re.IGNORECASE)


@dataclass(frozen=True)
class RawMessage:
    """One message as fetched: its UID, INTERNALDATE (None if absent) and bytes."""

    uid: int
    internaldate: datetime | None
    raw: bytes = field(repr=False)


def uid_set(uids: Sequence[int]) -> str:
    """Return an IMAP sequence set for ascending ``uids`` with runs compressed (``1:5,7``).

    Raises:
        ValueError: ``uids`` is empty.
    """
    if not uids:
        raise ValueError("uid_set needs at least one UID")
    parts: list[str] = []
    start = prev = uids[0]
    for uid in uids[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


def parse_fetch_response(data: Sequence[Any]) -> list[RawMessage]:
    """Turn imaplib's data of a ``UID FETCH ... (UID INTERNALDATE BODY.PEEK[])`` into messages.

    imaplib gives, per message with a literal, a tuple ``(b'<seq> FETCH (... BODY[] {n}',
    <n bytes>)`` followed by the rest of the response line as bytes (``b')'`` or, when the
    server sends the literal first, ``b' UID 7 INTERNALDATE "...")'``). Untagged FETCH
    responses without a literal (flag updates from other sessions) are ignored.

    Returns:
        The messages, in the order received.

    Raises:
        ImapProtocolError: a message came without a UID.
    """
    out: list[RawMessage] = []
    meta: list[bytes] = []
    body: bytes | None = None

    def flush() -> None:
        if body is None:
            return
        text = b" ".join(meta)
        uid = _UID.search(text)
        if uid is None:
            raise ImapProtocolError(f"FETCH response without UID: {text[:200]!r}")
        stamp = _INTERNALDATE.search(text)
        when = None
        if stamp is not None:
            try:
                when = parse_to_datetime(stamp.group(1), normalise=False)
            except ValueError:
                when = None
            if when is not None and when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
        out.append(RawMessage(int(uid.group(1)), when, body))

    for item in data:
        if isinstance(item, tuple):
            flush()
            head = bytes(item[0])
            if _BODY_LITERAL.search(head):
                meta, body = [head], bytes(item[1])
            else:  # a literal of something we did not ask for
                meta, body = [], None
        elif isinstance(item, bytes) and body is not None and not _FETCH_START.match(item):
            meta.append(item)
        else:  # None, or a separate untagged FETCH without a literal
            flush()
            meta, body = [], None
    flush()
    return out


def parse_size_response(data: Sequence[Any]) -> dict[int, int]:
    """Turn imaplib's data of a ``UID FETCH ... (UID RFC822.SIZE)`` into {uid: size}.

    Untagged FETCH responses without both a UID and an RFC822.SIZE (flag updates from other
    sessions) are ignored.

    Returns:
        The size in bytes of each UID the server answered for.
    """
    sizes: dict[int, int] = {}
    for item in data:
        line = bytes(item[0]) if isinstance(item, tuple) else item
        if not isinstance(line, bytes):
            continue
        uid, size = _UID.search(line), _RFC822_SIZE.search(line)
        if uid is not None and size is not None:
            sizes[int(uid.group(1))] = int(size.group(1))
    return sizes
