"""Undo a part's Content-Transfer-Encoding (base64, quoted-printable), leniently, in chunks.

Bad base64 is never an error: characters outside the alphabet are skipped and a broken tail
is cut, with a note. The lenient base64 decoder is also used for RFC 2047 ``B`` words.

A big part is never decoded in one piece unless asked for: :func:`undo_transfer` returns a
:class:`Transfer` (the still encoded bytes, often a ``memoryview`` into the message, and how
to decode them) whose :meth:`Transfer.chunks` yields the decoded bytes about
:data:`CHUNK_SIZE` at a time, so an attachment is hashed at parse time and written to its file
later without its decoded bytes ever being in memory whole. The chunks add up to exactly what
decoding the whole part at once gives, notes included.
"""

from __future__ import annotations

import binascii
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = [
    "CHUNK_SIZE",
    "Transfer",
    "b64_lenient",
    "decode_transfer",
    "fix_b64_padding",
    "undo_transfer",
]

#: Encoded bytes decoded per step by :meth:`Transfer.chunks` (a multiple of 4).
CHUNK_SIZE = 1 << 20

_B64_WS = b" \t\r\n"
_NOT_B64 = re.compile(rb"[^A-Za-z0-9+/]")
_IDENTITY = ("7bit", "8bit", "binary", "")

T = TypeVar("T")


def fix_b64_padding(kept: bytes) -> bytes:
    """Return base64 text ``kept`` (alphabet characters only) cut or padded to a multiple of 4."""
    rest = len(kept) % 4
    if rest == 1:
        return kept[:-1]
    if rest:
        return kept + b"=" * (4 - rest)
    return kept


def b64_lenient(data: bytes) -> bytes:
    """Return ``data`` base64-decoded, ignoring characters outside the alphabet and a broken
    tail; never raises."""
    kept = fix_b64_padding(_NOT_B64.sub(b"", data))
    try:
        return binascii.a2b_base64(kept)
    except binascii.Error:  # pragma: no cover - kept is well-formed by construction
        return b""


def _pieces(data: bytes | memoryview, size: int) -> Iterator[bytes]:
    """Yield ``data`` as bytes objects of at most ``size`` bytes (nothing for empty data)."""
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])


def _b64_strict(data: bytes | memoryview, size: int) -> Iterator[bytes]:
    """Yield the strict base64 decoding of ``data`` (white space ignored) in chunks.

    Groups of four are decoded as they come, except the last whole group seen; from the first
    ``=`` on, the rest is decoded as one piece together with that held-back group (valid
    base64 has padding only at its end, so that piece is short, and it starts as the tail of
    the whole would: with a group, not with padding). Raises :class:`binascii.Error` where
    strict decoding of the whole would.
    """
    carry = b""
    tail: list[bytes] | None = None
    for piece in _pieces(data, size):
        compact = piece.translate(None, _B64_WS)
        if tail is not None:
            tail.append(compact)
            continue
        combined = carry + compact if carry else compact
        if b"=" in combined:
            tail, carry = [combined], b""
            continue
        cut = len(combined) - len(combined) % 4 - 4  # hold back the last whole group
        if cut > 0:
            yield binascii.a2b_base64(combined[:cut], strict_mode=True)
            carry = combined[cut:]
        else:
            carry = combined
    final = b"".join(tail) if tail is not None else carry
    if final:
        yield binascii.a2b_base64(final, strict_mode=True)


def _b64_whole(data: bytes | memoryview) -> Iterator[bytes]:
    """Yield the strict base64 decoding of all of ``data`` at once (raises binascii.Error)."""
    yield binascii.a2b_base64(bytes(data).translate(None, _B64_WS), strict_mode=True)


def _b64_lenient_chunks(data: bytes | memoryview, size: int) -> Iterator[bytes]:
    """Yield :func:`b64_lenient` of ``data`` in chunks (the same bytes, in pieces)."""
    carry = b""
    for piece in _pieces(data, size):
        kept = carry + _NOT_B64.sub(b"", piece)
        cut = len(kept) - len(kept) % 4
        if cut:
            yield binascii.a2b_base64(kept[:cut])
        carry = kept[cut:]
    tail = fix_b64_padding(carry)
    if tail:
        yield binascii.a2b_base64(tail)


def _qp_chunks(data: bytes | memoryview, size: int) -> Iterator[bytes]:
    """Yield the quoted-printable decoding of ``data`` in chunks of whole lines.

    Every escape (``=XY``) and soft line break (``=`` at a line's end) lies within one line, so
    decoding each run of whole lines on its own gives what decoding the whole gives; a line
    longer than ``size`` is decoded with the lines after it once it ends.
    """
    carry = b""
    for piece in _pieces(data, size):
        combined = carry + piece if carry else piece
        cut = combined.rfind(b"\n") + 1
        if cut:
            yield binascii.a2b_qp(combined[:cut])
            carry = combined[cut:]
        else:
            carry = combined
    if carry:
        yield binascii.a2b_qp(carry)


@dataclass(frozen=True, slots=True)
class Transfer:
    """A part's body still in its transfer encoding, and the decoding chosen for it.

    ``mode`` is ``identity`` (kept as is), ``quoted-printable``, ``base64`` (strict, in
    chunks), ``base64-whole`` (strict, at once: a safety net should the chunks ever refuse
    what the whole accepts) or ``base64-lenient``.
    """

    data: bytes | memoryview = field(repr=False)
    mode: str

    def chunks(self, size: int | None = None) -> Iterator[bytes]:
        """Yield the decoded bytes in order, in chunks of about ``size`` encoded bytes
        (default :data:`CHUNK_SIZE`).

        Raises :class:`binascii.Error` only in mode ``base64``/``base64-whole`` for data that
        is not strictly valid (:func:`undo_transfer` never hands out such a Transfer).
        """
        size = size or CHUNK_SIZE
        if self.mode == "identity":
            return _pieces(self.data, size)
        if self.mode == "quoted-printable":
            return _qp_chunks(self.data, size)
        if self.mode == "base64":
            return _b64_strict(self.data, size)
        if self.mode == "base64-whole":
            return _b64_whole(self.data)
        return _b64_lenient_chunks(self.data, size)

    def decoded(self) -> bytes:
        """Return all of the decoded bytes (one copy: the chunks are written into one buffer)."""
        if self.mode == "identity":
            return bytes(self.data)
        return _join(self.chunks())


def _join(chunks: Iterator[bytes]) -> bytes:
    """Return the concatenation of ``chunks`` without holding the chunks and the whole."""
    buffer = io.BytesIO()
    for chunk in chunks:
        buffer.write(chunk)
    return buffer.getvalue()  # the buffer itself, not a copy


def undo_transfer(
    data: bytes | memoryview,
    cte: str | None,
    where: str,
    notes: list[str],
    consume: Callable[[Iterator[bytes]], T],
) -> tuple[Transfer, T]:
    """Choose how to undo Content-Transfer-Encoding ``cte`` of ``data`` and decode it once.

    ``consume`` is given the decoded chunks (it may be called again, from the start, when
    strict base64 turns out to be invalid). Returns the :class:`Transfer` (to decode again
    later) and what ``consume`` returned for it. Bad base64 is decoded leniently and an
    unknown encoding is kept as is, each with a note (appended to ``notes``, naming
    ``where``). Never raises (but what ``consume`` raises).
    """
    name = cte.strip().strip('"').lower() if cte else ""
    if name == "base64":
        for mode in ("base64", "base64-whole"):
            transfer = Transfer(data, mode)
            try:
                return transfer, consume(transfer.chunks())
            except binascii.Error:
                pass
        notes.append(f"{where}: invalid base64, decoded leniently")
        transfer = Transfer(data, "base64-lenient")
        return transfer, consume(transfer.chunks())
    if name == "quoted-printable":
        transfer = Transfer(data, "quoted-printable")
        return transfer, consume(transfer.chunks())
    if name not in _IDENTITY:
        notes.append(f"{where}: unknown transfer encoding {name!r}, kept as is")
    transfer = Transfer(data, "identity")
    return transfer, consume(transfer.chunks())


def decode_transfer(
    data: bytes | memoryview, cte: str | None, where: str, notes: list[str]
) -> bytes:
    """Return ``data`` with Content-Transfer-Encoding ``cte`` undone; never raises.

    Bad base64 is decoded leniently and an unknown encoding is kept as is, each with a note
    (appended to ``notes``, naming ``where``).
    """
    name = cte.strip().strip('"').lower() if cte else ""
    if name in _IDENTITY:  # no note, no chunks: one copy (none for bytes)
        return data if isinstance(data, bytes) else bytes(data)
    return undo_transfer(data, cte, where, notes, _join)[1]
