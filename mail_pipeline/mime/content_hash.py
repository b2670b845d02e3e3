"""The content hash of a message: what makes two deliveries of it the same message.

The hash is the SHA-256 of the raw message without the headers added in transit
(:data:`TRACE_HEADERS`, an mbox ``From `` line) and with ``\\n`` line endings, so the same
message fetched over IMAP, read from an mbox or received over SMTP hashes alike.
"""

from __future__ import annotations

import hashlib

__all__ = ["TRACE_HEADERS", "content_hash"]

#: Headers added in transit; left out of :func:`content_hash`.
TRACE_HEADERS = frozenset(
    {
        "received",
        "return-path",
        "delivered-to",
        "x-original-to",
        "status",
        "x-status",
        "x-uid",
        "x-keywords",
        "content-length",
        "lines",
    }
)


#: Bytes of the body normalised and hashed per step.
_CHUNK = 1 << 20


def _lf(data: bytes) -> bytes:
    """Return ``data`` with CRLF and lone CR line endings turned into LF."""
    data = data.replace(b"\r\n", b"\n")
    return data.replace(b"\r", b"\n") if b"\r" in data else data


def _hash_body(digest: hashlib._Hash, body: memoryview) -> None:
    """Add ``body`` with \n line endings and without its trailing line breaks to ``digest``,
    a chunk at a time (no copy of the whole body)."""
    carry = b""  # a CR at the end of a chunk: its LF may start the next one
    pending = 0  # line breaks held back: they count only if something follows them
    for start in range(0, len(body), _CHUNK):
        chunk = carry + bytes(body[start : start + _CHUNK])
        carry = b""
        if chunk.endswith(b"\r"):
            chunk, carry = chunk[:-1], b"\r"
        text = _lf(chunk)
        stripped = text.rstrip(b"\n")
        if stripped:
            digest.update(b"\n" * pending)
            digest.update(stripped)
            pending = len(text) - len(stripped)
        else:
            pending += len(text)
    # A CR left over ends the body: it is a line break, and trailing breaks do not count.


def content_hash(raw: bytes, body_start: int) -> str:
    """Return the sha256 (lowercase hex) of ``raw`` without trace headers and with \\n line
    endings; ``body_start`` is the offset of the body (the end of the top-level header block).

    Only the top-level header block is filtered (an mbox From_ line counts as trace); the
    body is hashed as is apart from line endings, and trailing line breaks count as one.
    The body is read in chunks: no copy of it is made.
    """
    digest = hashlib.sha256()
    keep = True
    kept: list[bytes] = []
    for line in raw[:body_start].splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if keep:
                kept.append(line)
            continue
        if line.startswith(b"From "):
            keep = False
            continue
        name = line.split(b":", 1)[0].strip().lower()
        keep = name.decode("latin-1") not in TRACE_HEADERS
        if keep:
            kept.append(line)
    digest.update(_lf(b"".join(kept)))
    _hash_body(digest, memoryview(raw)[body_start:])
    digest.update(b"\n")
    return digest.hexdigest()
