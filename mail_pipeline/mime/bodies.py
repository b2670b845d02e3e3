"""Sort the leaves of a part tree into text bodies, HTML bodies and attachments, decoded.

A ``text/plain`` or ``text/html`` leaf without a filename that is not
``Content-Disposition: attachment`` is a body; every other leaf (including ``message/*``
parts, kept as their raw bytes) is an attachment.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from mail_pipeline.mime.charsets import decode_text
from mail_pipeline.mime.headers import decode_words, parse_params
from mail_pipeline.mime.results import ParsedAttachment
from mail_pipeline.mime.structure import MAX_DEPTH, Part
from mail_pipeline.mime.transfer import Transfer, decode_transfer, undo_transfer

__all__ = ["Bodies", "collect", "first_charset"]

#: An attachment whose encoded part is at most this big is decoded at once and kept decoded.
SMALL_PART = 256 * 1024

_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9_.:+-]+)", re.I)


@dataclass(slots=True)
class Bodies:
    """The decoded bodies and attachments of a message, in document order."""

    text: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[ParsedAttachment] = field(default_factory=list)


def first_charset(part: Part, depth: int = 0) -> str | None:
    """Return the first charset declared by a part at or under ``part``, None if there is none.

    The message's header fields may hold raw 8-bit text; this is the hint for decoding it.
    """
    if depth > MAX_DEPTH:
        return None
    value = part.get("content-type")
    if value and "charset" in value.lower():
        match = _CHARSET.search(value)
        if match:
            return match.group(1)
    for child in part.children:
        found = first_charset(child, depth + 1)
        if found:
            return found
    return None


def collect(part: Part, hint: str | None, out: Bodies, notes: list[str]) -> None:
    """Decode the leaves under ``part`` into ``out``: text bodies, HTML bodies, attachments.

    ``hint`` is the charset for raw 8-bit header text; repairs are noted in ``notes``. Returns
    nothing; never raises.
    """
    if part.is_multipart:
        for child in part.children:
            collect(child, hint, out, notes)
        return
    content_type = part.get("content-type")
    ctype_params: dict[str, str] = {}
    if content_type is not None:
        _main, ctype_params = parse_params(content_type, hint, "content-type", notes)
    disposition_value = part.get("content-disposition")
    disposition: str | None = None
    disp_params: dict[str, str] = {}
    if disposition_value is not None:
        disposition, disp_params = parse_params(
            disposition_value, hint, "content-disposition", notes
        )
        disposition = disposition or None
    filename = disp_params.get("filename") or ctype_params.get("name") or None
    ctype = part.ctype
    label = f"part {filename!r}" if filename else f"{ctype} part"
    cte = part.get("content-transfer-encoding")
    if ctype in ("text/plain", "text/html") and disposition != "attachment" and filename is None:
        content = decode_transfer(part.body, cte, label, notes)
        where = "text part" if ctype == "text/plain" else "html part"
        text = decode_text(content, ctype_params.get("charset"), where, notes)
        del content  # a big body: never its bytes, its text and the text without CR at once
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        (out.text if ctype == "text/plain" else out.html).append(text)
        return
    if len(part.body) <= SMALL_PART:  # decoded once and kept: cheaper than decoding twice
        decoded = decode_transfer(part.body, cte, label, notes)
        source, size = Transfer(decoded, "identity"), len(decoded)
        digest = hashlib.sha256(decoded).hexdigest()
    else:  # kept encoded: decoded a chunk at a time, here to hash it and later to write it
        source, (size, digest) = undo_transfer(part.body, cte, label, notes, _measure)
    content_id = part.get("content-id")
    if content_id is not None:
        content_id = content_id.strip().strip("<>").strip() or None
        if content_id is not None and not content_id.isascii():
            content_id = decode_words(content_id, hint, "content-id", notes)
    if disposition == "inline":
        inline = True
    elif disposition == "attachment":
        inline = False
    else:
        inline = content_id is not None
    out.attachments.append(
        ParsedAttachment(filename, ctype, content_id, inline, size, digest, source)
    )


def _measure(chunks: Iterator[bytes]) -> tuple[int, str]:
    """Return the size and SHA-256 (lowercase hex) of the bytes of ``chunks``."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()
