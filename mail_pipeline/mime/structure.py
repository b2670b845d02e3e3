"""Read the MIME structure of a message into a tree of undecoded :class:`Part` objects.

A message whose root is not ``multipart/*`` or ``message/*`` is one part and needs no
scanner. Otherwise flanker's scanner (:mod:`mail_pipeline.mime.flanker_adapter`) locates the
parts; when it gives up (``multipart/*`` without a boundary, more than its 5,000 tokens, a
recursion error) the stdlib :mod:`email` parser (``compat32``, which never raises on bad
MIME) reads the structure instead, with a note. Multipart nesting deeper than
:data:`MAX_DEPTH` is not descended into: the deeper subtree is kept as one leaf.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from dataclasses import dataclass
from email.message import Message
from typing import Any

from mail_pipeline.errors import MessageParseError
from mail_pipeline.mime import flanker_adapter
from mail_pipeline.mime.header_block import Fields, read_header_block

__all__ = ["MAX_DEPTH", "Part", "needs_scan", "read_structure"]

#: Multipart nesting deeper than this is not descended into: the deeper subtree is kept as one
#: attachment (its raw bytes) with a note.
MAX_DEPTH = 32

_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
_DEEP_NOTE = f"multipart nested deeper than {MAX_DEPTH} levels kept as one part"


@dataclass(slots=True)
class Part:
    """A MIME part: its header fields, type and raw body, nothing decoded yet."""

    headers: Fields  # (lowercased name, unfolded value as a latin-1 string)
    ctype: str  # lowercased "type/subtype"
    # raw body bytes (leaf or message/*), transfer encoding not yet decoded: a view into the
    # message's bytes (no copy), or bytes made by the stdlib fallback
    body: bytes | memoryview
    children: list[Part]
    is_multipart: bool

    def get(self, name: str) -> str | None:
        """Return the value of the first header field ``name`` (lowercase), None if absent."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


def _root_type(headers: Fields) -> str:
    """Return the lowercased media type of the root's first Content-Type ("" without one)."""
    root_ctype = next((v for k, v in headers if k == "content-type"), "")
    return root_ctype.split(";", 1)[0].strip().lower()


def needs_scan(headers: Fields) -> bool:
    """Whether a message with top-level fields ``headers`` has a structure to scan (its root
    is ``multipart/*`` or ``message/*``); otherwise :func:`read_structure` needs only the
    header block's text."""
    return _root_type(headers).startswith(("multipart/", "message/"))


def read_structure(raw: bytes, s: str, headers: Fields, body_start: int, notes: list[str]) -> Part:
    """Return the part tree of message ``raw`` (``s`` is its latin-1 view; only its header
    block is needed when the root is neither ``multipart/*`` nor ``message/*``).

    Part bodies are views into ``raw``, not copies.

    ``headers`` and ``body_start`` are the root's fields and body offset, already read; they
    become the root part's. Fallbacks and cut-off nesting are noted in ``notes``. Raises
    :class:`MessageParseError` (``malformed_mime``) when neither flanker nor the stdlib parser
    can read the structure (in practice: pathological nesting).
    """
    root_type = _root_type(headers)
    if not root_type.startswith(("multipart/", "message/")):  # see needs_scan
        # A single part: the scanner would find just headers and body, which we have.
        main = root_type if _MEDIA_TYPE.fullmatch(root_type) else "text/plain"
        return Part(headers, main, memoryview(raw)[body_start:], [], False)
    tree: Part
    try:
        tree = _from_spans(flanker_adapter.scan(s, MAX_DEPTH), s, memoryview(raw), 0, notes)
    except Exception as flanker_error:  # DecodingError, RecursionError, flanker bugs
        try:
            tree = _convert_stdlib(_STDLIB_PARSER.parsebytes(raw), 0, notes)
        except Exception as stdlib_error:  # RecursionError on pathological nesting
            raise MessageParseError(
                "malformed_mime",
                f"flanker: {flanker_error!r}; stdlib email: {stdlib_error!r}",
            ) from stdlib_error
        notes.append(f"MIME structure read by the stdlib parser: flanker said {flanker_error}")
    tree.headers = headers  # the root's fields, as read by the caller
    return tree


def _from_spans(
    span: flanker_adapter.Span, s: str, raw: memoryview, depth: int, notes: list[str]
) -> Part:
    """Return the part at ``span``, with its header block read from ``s``."""
    headers, body_start = read_header_block(s, span.start, span.end)
    if span.multipart:
        if depth >= MAX_DEPTH or not span.children:
            notes.append(_DEEP_NOTE)
            return Part(headers, span.content_type, raw[body_start : span.end], [], False)
        children = [_from_spans(child, s, raw, depth + 1, notes) for child in span.children]
        return Part(headers, span.content_type, b"", children, True)
    return Part(headers, span.content_type, raw[body_start : span.end], [], False)


# --- the stdlib fallback ---------------------------------------------------------------------

_STDLIB_PARSER = email.parser.BytesParser(policy=email.policy.compat32)
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def _convert_stdlib(msg: Message, depth: int, notes: list[str]) -> Part:
    """Return the part tree of a message read by the stdlib parser."""
    headers = [(name.strip().lower(), _to_latin1(value)) for name, value in msg.raw_items()]
    ctype = msg.get_content_type().lower()
    payload = msg.get_payload()
    if isinstance(payload, list):
        if ctype.startswith("message/"):
            body = b"".join(_stdlib_bytes(m) for m in payload if isinstance(m, Message))
            return Part(headers, ctype, body, [], False)
        if depth >= MAX_DEPTH:
            notes.append(_DEEP_NOTE)
            return Part(headers, ctype, _stdlib_bytes(msg), [], False)
        children = [_convert_stdlib(m, depth + 1, notes) for m in payload if isinstance(m, Message)]
        return Part(headers, ctype, b"", children, True)
    # get_payload() re-decodes 8-bit text with the declared charset; the raw str is wanted.
    raw_payload = getattr(msg, "_payload", payload)
    body = _surrogate_bytes(raw_payload) if isinstance(raw_payload, str) else b""
    if ctype.startswith("multipart/"):
        notes.append(f"{ctype} without usable boundary: body kept as text/plain")
        ctype = "text/plain"
    return Part(headers, ctype, body, [], False)


def _to_latin1(value: Any) -> str:
    """Return a compat32 header value (str with surrogate escapes, or a Header) as latin-1 text."""
    if not isinstance(value, str):
        value = str(value)
    return _FOLD.sub("", _surrogate_bytes(value).decode("latin-1")).strip()


def _surrogate_bytes(text: str) -> bytes:
    """Return the bytes behind a compat32 string (ASCII with surrogate-escaped 8-bit bytes)."""
    try:
        return text.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:  # real non-ASCII characters (set by the parser's own repairs)
        return text.encode("utf-8", "surrogateescape")


def _stdlib_bytes(msg: Message) -> bytes:
    """Return the bytes of a stdlib message part, as well as the generator can make them."""
    try:
        return msg.as_bytes(policy=email.policy.compat32)
    except Exception:  # the generator can choke on broken parts; the text is all we need
        return str(msg).encode("utf-8", "surrogateescape")
