"""Decode header values: RFC 2047 encoded words and RFC 2231 parameters.

Values arrive as the latin-1 view of the raw header bytes (see
:mod:`mail_pipeline.mime.header_block`); raw 8-bit text is decoded as UTF-8, else with a
charset hint (the message's first declared charset). Every charset decoding goes through
:func:`mail_pipeline.mime.charsets.decode_text`, so a wrong label gives a note, not an error.

Why not the stdlib's decoders (checked against Python 3.11):

* ``email.header.decode_header`` raises ``HeaderParseError`` for one broken ``B`` word
  (``=?utf-8?b?abcde?=``) where the rest of the subject is still readable, and returns the
  unencoded text as ``raw-unicode-escape`` bytes, which do not round-trip text that holds a
  backslash (``C:\\users`` fails to decode back).
* ``email.utils.decode_params`` raises ``TypeError`` when ``name*=`` and ``name*0=`` both
  occur, and does not recognise continuations of names that are not ``\\w+``
  (``file-name*0*=``).
"""

from __future__ import annotations

import binascii
import re

from mail_pipeline.mime.charsets import decode_text
from mail_pipeline.mime.transfer import b64_lenient, fix_b64_padding

__all__ = ["decode_words", "parse_params"]

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?\s]*)\?=")
_SPACE_BETWEEN_WORDS = re.compile(r"(\?=)[ \t\r\n]+(=\?)")


def decode_words(
    value: str, hint: str | None, where: str, notes: list[str], *, raw: bool = True
) -> str:
    """Return the text of a header value: raw 8-bit bytes decoded first (UTF-8, else ``hint``),
    then RFC 2047 encoded words.

    ``raw`` says ``value`` is still the latin-1 view of the header bytes; pass False for text
    that is already decoded (then only the encoded words are decoded). Adjacent encoded words
    with the same charset are joined as bytes before decoding, so a multi-byte character
    split across two words survives. Never raises.
    """
    if raw and not value.isascii():
        value = decode_text(value.encode("latin-1"), hint or "utf-8", where, notes)
    if "=?" not in value:
        return value
    value = _SPACE_BETWEEN_WORDS.sub(r"\1\2", value)
    out: list[str] = []
    pending: bytearray = bytearray()
    pending_charset = ""
    pos = 0

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending_charset:
            out.append(decode_text(bytes(pending), pending_charset, where, notes))
        pending = bytearray()
        pending_charset = ""

    for match in _ENCODED_WORD.finditer(value):
        if match.start() > pos:
            flush()
            out.append(value[pos : match.start()])
        charset = match.group(1).split("*", 1)[0].lower()  # RFC 2231 language suffix
        encoded = match.group(3).encode("ascii", "replace")
        if match.group(2) in "bB":
            kept = fix_b64_padding(re.sub(rb"[^A-Za-z0-9+/]", b"", encoded))
            try:
                data = binascii.a2b_base64(kept)
            except binascii.Error:
                data = b64_lenient(encoded)
        else:
            data = binascii.a2b_qp(encoded, header=True)
        if charset != pending_charset:
            flush()
            pending_charset = charset
        pending += data
        pos = match.end()
    flush()
    out.append(value[pos:])
    return "".join(out)


_PARAM_SPLIT = re.compile(r'"(?:[^"\\]|\\.)*"?|;|[^";]+', re.S)


def parse_params(
    value: str, hint: str | None, where: str, notes: list[str]
) -> tuple[str, dict[str, str]]:
    """Return ``type/sub; a=b; c*0*=...`` split into the lowercased value and decoded parameters
    (a dict keyed by lowercased name; the first of duplicate names wins).

    RFC 2231 extended and continued parameters (``name*=``, ``name*0*=``, ``name*1=``) are
    joined and decoded with their charset; other values may hold RFC 2047 words (Outlook) or
    raw 8-bit text. Never raises.
    """
    pieces: list[str] = []
    current: list[str] = []
    for token in _PARAM_SPLIT.findall(value):
        if token == ";":
            pieces.append("".join(current))
            current = []
        else:
            current.append(token)
    pieces.append("".join(current))
    main = pieces[0].strip().lower()
    simple: dict[str, str] = {}
    extended: dict[str, list[tuple[int, bool, str]]] = {}
    for piece in pieces[1:]:
        name, eq, raw = piece.partition("=")
        if not eq:
            continue
        name = name.strip().lower()
        raw = raw.strip()
        if raw.startswith('"'):
            raw = re.sub(
                r"\\(.)", r"\1", raw[1:-1] if raw.endswith('"') and len(raw) > 1 else raw[1:]
            )
        if "*" in name:
            base, _, rest = name.partition("*")
            encoded = rest.endswith("*") or rest == ""
            index_text = rest.rstrip("*")
            index = int(index_text) if index_text.isdigit() else 0
            extended.setdefault(base, []).append((index, encoded, raw))
        elif name not in simple:
            simple[name] = raw
    params: dict[str, str] = {}
    for name, raw in simple.items():
        params[name] = decode_words(raw, hint, where, notes)
    for name, segments in extended.items():
        segments.sort(key=lambda seg: seg[0])
        charset = ""
        data = bytearray()
        for position, (_index, encoded, raw) in enumerate(segments):
            if encoded:
                if position == 0 and raw.count("'") >= 2:
                    charset, _lang, raw = raw.split("'", 2)
                data += _percent_decode(raw)
            else:
                data += raw.encode("latin-1", "replace")
        params[name] = decode_text(bytes(data), charset or hint or "utf-8", where, notes)
    return main, params


_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")


def _percent_decode(text: str) -> bytes:
    """Return the bytes of an RFC 2231 ``%XX``-encoded value (other characters as latin-1)."""
    raw = text.encode("latin-1", "replace")
    if b"%" not in raw:
        return raw
    return _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), raw)
