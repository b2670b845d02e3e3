"""The result types of :func:`mail_pipeline.mime.parse_message`: a message and its attachments.

Both are frozen dataclasses; the raw bytes and attachment contents are left out of ``repr``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["ParsedAttachment", "ParsedMessage"]


@dataclass(frozen=True, slots=True)
class ParsedAttachment:
    """One non-body leaf part of a message (file, inline image, forwarded message, signature)."""

    filename: str | None
    content_type: str
    content: bytes = field(repr=False)
    content_id: str | None
    inline: bool

    @property
    def size(self) -> int:
        """Return the size of the decoded content in bytes."""
        return len(self.content)

    @property
    def sha256(self) -> str:
        """Return the SHA-256 of the decoded content, as lowercase hex."""
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """The fields of one message the pipeline stores; see :func:`.parse.parse_message`."""

    message_id: str | None
    subject: str
    sender: str
    sender_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    date: datetime | None
    text: str
    html: str
    attachments: tuple[ParsedAttachment, ...]
    content_hash: str
    size: int
    raw: bytes = field(repr=False)
    notes: tuple[str, ...] = ()
