"""Undo a part's Content-Transfer-Encoding (base64, quoted-printable), leniently.

Bad base64 is never an error: characters outside the alphabet are skipped and a broken tail
is cut, with a note. The lenient base64 decoder is also used for RFC 2047 ``B`` words.
"""

from __future__ import annotations

import binascii
import re

__all__ = ["b64_lenient", "decode_transfer", "fix_b64_padding"]

_B64_WS = b" \t\r\n"
_NOT_B64 = re.compile(rb"[^A-Za-z0-9+/]")


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


def decode_transfer(data: bytes, cte: str | None, where: str, notes: list[str]) -> bytes:
    """Return ``data`` with Content-Transfer-Encoding ``cte`` undone; never raises.

    Bad base64 is decoded leniently and an unknown encoding is kept as is, each with a note
    (appended to ``notes``, naming ``where``).
    """
    if not cte:
        return data
    cte = cte.strip().strip('"').lower()
    if cte == "base64":
        compact = data.translate(None, _B64_WS)
        try:
            return binascii.a2b_base64(compact, strict_mode=True)
        except binascii.Error:
            pass
        notes.append(f"{where}: invalid base64, decoded leniently")
        return b64_lenient(compact)
    if cte == "quoted-printable":
        return binascii.a2b_qp(data)
    if cte not in ("7bit", "8bit", "binary", ""):
        notes.append(f"{where}: unknown transfer encoding {cte!r}, kept as is")
    return data
