"""The result types of :func:`mail_pipeline.mime.parse_message`: a message and its attachments.

Both are frozen dataclasses; the raw bytes and attachment contents are left out of ``repr``.
An attachment keeps its part still encoded (a view into the message's raw bytes) and decodes
it on demand, in chunks (:meth:`ParsedAttachment.chunks`): a big attachment is never held
decoded beside the message. Its size and SHA-256 are computed while parsing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from mail_pipeline.mime.transfer import Transfer

__all__ = ["ParsedAttachment", "ParsedMessage"]


@dataclass(frozen=True, slots=True)
class ParsedAttachment:
    """One non-body leaf part of a message (file, inline image, forwarded message, signature).

    ``size`` and ``sha256`` (lowercase hex) are those of the decoded content; ``source`` is
    the encoded part and how to decode it (not compared: equal contents are equal).
    """

    filename: str | None
    content_type: str
    content_id: str | None
    inline: bool
    size: int
    sha256: str
    source: Transfer = field(repr=False, compare=False)

    @property
    def content(self) -> bytes:
        """Return the decoded content, all of it (decoded anew on every call)."""
        return self.source.decoded()

    def chunks(self) -> Iterator[bytes]:
        """Yield the decoded content in order, about a MiB at a time."""
        return self.source.chunks()


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
