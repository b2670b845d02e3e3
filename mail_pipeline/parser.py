"""Turn the raw bytes of one e-mail into a :class:`ParsedMessage`.

This module has no Dagster imports; the IMAP fetcher and the spool ingest both call
:func:`parse_message` and hand the result to the save service.

What is a message and what is not
---------------------------------
Intake is lossless, so a damaged message yields a result with ``notes`` rather than a
rejection. :func:`parse_message` raises :class:`~mail_pipeline.errors.MessageParseError` only when
the bytes are not a message at all:

* ``empty`` — no bytes, or only white space;
* ``not_a_message`` — there is no header block: after an optional mbox ``From `` line the
  input does not start with header fields, the header block holds a NUL byte (binary data),
  or none of its fields is a header a real message has (``From``, ``To``, ``Subject``,
  ``Date``, ``Message-ID``, ``Received``, ``MIME-Version``, ``Content-Type``, ... — see
  ``_MESSAGE_FIELDS``);
* ``malformed_mime`` — the structure could not be read by flanker nor by the stdlib
  fallback (in practice: pathological nesting that exhausts the recursion limit);
* ``too_large`` (:class:`~mail_pipeline.errors.MessageTooLargeError`) — larger than ``max_size``.

Everything else parses: a truncated message gives its headers and whatever body there is,
a multipart without boundary gives its body as text, bad base64 is decoded leniently, a wrong
charset label is worked around — each with a note. No other exception escapes, and the work
is linear in the input size (no backtracking regular expressions over the body, nesting is
capped at ``MAX_DEPTH`` levels).

How flanker is used, and where it is bypassed
---------------------------------------------
flanker (0.9.11) reads the MIME structure: its scanner (``flanker.mime.message.scanner``)
finds the content types and boundaries and builds the part tree, and
``flanker.addresslib.address.parse`` parses each address. Around it:

* The raw bytes are handed to the scanner as a ``latin-1`` string (one character per byte).
  ``flanker.mime.from_string(bytes)`` instead decodes the whole message as UTF-8 and, when
  that fails (any 8-bit non-UTF-8 part), guesses one charset for the *whole message* with
  chardet: ≈10× slower and wrong for correctly labelled mail (``café`` → ``cafÚ``). With
  latin-1 every string offset is a byte offset, so each part's bytes are recovered exactly.
* flanker's tokenizer runs a regular expression at every position of the message (≈0.7 ms
  for 20 KB). :func:`_tokenize` produces the identical token list by trying the same
  expression only at line starts that can begin a token (``--``, an empty line,
  ``Content-Type:``) and then runs flanker's own filter and recursive-descent parser. A
  message whose root is not ``multipart/*`` or ``message/*`` needs no scanner at all.
* Header fields, parameters (RFC 2231 ``name*0*=``), RFC 2047 encoded words, transfer
  encodings and charsets are decoded here, not by flanker: flanker decodes RFC 2231 values
  with the wrong charset, maps gb2312 text to mojibake, and turns bad base64 into garbage
  silently. Bodies are decoded with their declared charset when it decodes cleanly, then
  UTF-8, then the declared charset's superset (gb2312/gbk → gb18030, shift_jis → cp932,
  iso-8859-1 → windows-1252, ...), then a chardet guess of that one part with replacement
  characters, with a note for every fallback.
* ``address.parse_list`` drops a whole list for one bad entry and knows no groups, so lists
  are split here (quotes, comments, angle brackets and ``group: ...;`` respected) and each
  entry is parsed alone. Plain ``local@domain.tld`` and ``"Name" <local@domain.tld>`` entries
  take a fast path (a strict regular expression) instead of flanker's grammar (≈35–90 µs
  per address). An entry that flanker rejects is tried with :func:`email.utils.parseaddr`,
  else dropped with a note.
* When the flanker scanner raises (``multipart/*`` without a boundary, more than its 5,000
  tokens, a recursion error), the stdlib :mod:`email` parser (``compat32``, which never
  raises on bad MIME) reads the structure instead, and a note says so.
* Dates are parsed with :func:`email.utils.parsedate_to_datetime` (flanker has no date parser).
"""

from __future__ import annotations

import binascii
import codecs
import email.parser
import email.policy
import email.utils
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from typing import Any

import chardet
from flanker.addresslib import address as flanker_address
from flanker.mime.message import scanner as flanker_scanner
from flanker.mime.message.headers import parsing as flanker_parsing

from mail_pipeline.errors import MessageParseError, MessageTooLargeError
from mail_pipeline.html_text import html_to_text

__all__ = [
    "MAX_DEPTH",
    "TRACE_HEADERS",
    "ParsedAttachment",
    "ParsedMessage",
    "html_to_text",
    "parse_message",
]

#: Multipart nesting deeper than this is not descended into: the deeper subtree is kept as one
#: attachment (its raw bytes) with a note.
MAX_DEPTH = 32

#: Headers added in transit; left out of :attr:`ParsedMessage.content_hash`.
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

# A header block must hold at least one of these to be a message's header block.
_MESSAGE_FIELDS = frozenset(
    {
        "from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version",
        "content-type", "content-transfer-encoding", "content-disposition", "received",
        "return-path", "sender", "reply-to", "delivered-to", "x-original-to", "in-reply-to",
        "references", "resent-from", "resent-to", "resent-date", "resent-message-id",
        "resent-sender", "dkim-signature", "authentication-results", "arc-seal",
        "x-received", "x-mailer", "user-agent", "list-id", "thread-topic", "thread-index",
        "importance", "x-priority", "organization", "comments", "keywords", "x-uid",
        "status", "envelope-to", "x-envelope-from", "return-receipt-to",
    }
)

_MAX_MESSAGE_ID = 900
_MAX_ADDRESS = 1024  # flanker's own limit for one address
_CHARDET_SAMPLE = 64 * 1024


# --- result types --------------------------------------------------------------------------


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
    """The fields of one message the pipeline stores; see :func:`parse_message`."""

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


# --- the intermediate part tree ------------------------------------------------------------


@dataclass(slots=True)
class _Node:
    """A MIME part as read by flanker or the stdlib: undecoded, for the extraction below."""

    headers: list[tuple[str, str]]  # (lowercased name, unfolded value as a latin-1 string)
    ctype: str  # lowercased "type/subtype"
    body: bytes  # raw body bytes (leaf or message/*), transfer encoding not yet decoded
    children: list[_Node]
    is_multipart: bool

    def get(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


# --- header blocks -------------------------------------------------------------------------

# flanker's rule (headers/parsing.py) for a line that belongs to a header block, and a run
# of such lines (matched in one call: the header block of a part).
_HEADER_LINE = re.compile(r"From |[\x21-\x39\x3b-\x7e]+:|[\t ]")
_HEADER_RUN = re.compile(r"(?:(?:From |[\x21-\x39\x3b-\x7e]+:|[\t ])[^\n]*\n)*")


def _read_header_block(s: str, pos: int, end: int) -> tuple[list[tuple[str, str]], int]:
    """Read the header fields of the part that starts at ``s[pos]`` and ends before ``end``.

    Returns the fields as (lowercased name, unfolded and stripped value) in order, and the
    offset of the body. The block ends at an empty line (which is skipped), at a line that is
    no header line (flanker's rule: that line is the first body line) or at ``end``. An mbox
    ``From `` line is skipped; continuation lines before the first field are ignored.
    """
    run_end = _HEADER_RUN.match(s, pos, end).end()  # type: ignore[union-attr]  # matches ""
    if run_end >= end:
        body_start = end
    elif s.startswith("\n", run_end) or s.startswith("\r\n", run_end):
        body_start = s.index("\n", run_end) + 1
    elif s.find("\n", run_end, end) < 0 and _HEADER_LINE.match(s, run_end, end):
        run_end = body_start = end  # the last header line of a truncated message
    else:
        body_start = run_end
    fields: list[tuple[str, str]] = []
    name = ""
    value: list[str] = []
    for line in s[pos:run_end].split("\n"):
        if not line:
            continue
        if line[0] in " \t":
            if name:
                value.append(line.rstrip("\r"))
            continue
        if name:
            fields.append((name, "".join(value).strip()))
        if line.startswith("From "):
            name = ""  # an mbox From_ line, not a field
            continue
        head, _, rest = line.rstrip("\r").partition(":")
        name = head.strip().lower()
        value = [rest]
    if name:
        fields.append((name, "".join(value).strip()))
    return fields, body_start


# --- charsets ------------------------------------------------------------------------------

# Decoders that are supersets of a commonly mislabelled charset (Python codec names).
_SUPERSET = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "iso8859-1": "cp1252",
    "ascii": "cp1252",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "big5": "big5hkscs",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "euc_jp": "euc_jis_2004",
}
_ALIASES = {"x-sjis": "shift_jis", "ks_c_5601-1987": "euc_kr", "x-gbk": "gbk", "cp-850": "cp850"}
# Single-byte codecs decode any byte sequence "cleanly", so a UTF-8 body mislabelled with one
# of them is only recognisable by being valid UTF-8.
_SINGLE_BYTE = re.compile(r"^(iso8859-\d+|cp12\d\d|cp8\d\d|koi8.*|mac-.*|latin.*|tis-620|cp874)$")
_NOT_ASCII_COMPATIBLE = re.compile(r"^(utf[-_]?16.*|utf[-_]?32.*|utf[-_]?7|iso2022.*|hz)$")


def _codec(label: str | None) -> str | None:
    """Return Python's canonical codec name for a MIME charset label, or None if unknown."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except (LookupError, ValueError):
        return None


def _decode_text(data: bytes, label: str | None, where: str, notes: list[str]) -> str:
    """Decode ``data`` labelled with charset ``label``; never raises.

    Order: the declared charset if it decodes cleanly (a single-byte label on valid non-ASCII
    UTF-8 counts as wrong; iso-8859-1 is read as its superset windows-1252), UTF-8, the
    declared charset's superset, then a chardet guess of these bytes with replacement
    characters. Every fallback appends a note to ``notes``.
    """
    codec = _codec(label)
    if data.isascii() and (codec is None or not _NOT_ASCII_COMPATIBLE.match(codec)):
        return data.decode("ascii")
    if label and codec is None:
        notes.append(f"{where}: unknown charset {label!r}")
    if codec is not None and codec not in ("utf-8", "ascii"):
        if _SINGLE_BYTE.match(codec):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                notes.append(f"{where}: declared charset {label} wrong, decoded as utf-8")
                return text
            if codec == "iso8859-1":
                try:
                    return data.decode("cp1252")  # same text, plus the C1 range's punctuation
                except UnicodeDecodeError:
                    return data.decode("iso8859-1")
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if codec not in (None, "utf-8", "ascii"):
            notes.append(f"{where}: declared charset {label} wrong, decoded as utf-8")
        return text
    superset = _SUPERSET.get(codec) if codec is not None else None
    if superset is not None:
        try:
            text = data.decode(superset)
        except UnicodeDecodeError:
            pass
        else:
            notes.append(f"{where}: declared charset {label} wrong, decoded as {superset}")
            return text
    guess = _guess_codec(data)
    notes.append(
        f"{where}: charset {label or '(none)'} does not fit, decoded as {guess} "
        "with replacement characters"
    )
    return data.decode(guess, errors="replace")


# Charsets real mail uses; chardet's other answers (cp737, mac-cyrillic, ...) on short samples
# are noise, and windows-1252 is the better default then.
_PLAUSIBLE = re.compile(
    r"^(utf-8|cp125\d|iso8859-\d+|koi8_[ru]|gb18030|gbk|gb2312|big5|big5hkscs|shift_jis|cp932"
    r"|euc_jp|euc_kr|cp949|cp874|tis-620)$"
)


def _guess_codec(data: bytes) -> str:
    """Return a codec for bytes whose label did not fit: chardet's guess of (a sample of)
    ``data`` when it is a charset mail plausibly uses and decodes the sample cleanly, else
    windows-1252 (the most common unlabelled 8-bit charset)."""
    sample = data[:_CHARDET_SAMPLE]
    try:
        name = _codec(chardet.detect(sample).get("encoding"))
    except Exception:  # chardet is a heuristic; any failure just means "no guess"
        name = None
    if name is None or not _PLAUSIBLE.match(name):
        return "cp1252"
    name = _SUPERSET.get(name, name) if name != "iso8859-1" else "cp1252"
    try:
        sample.decode(name)
    except UnicodeDecodeError as error:
        if error.start < len(sample) - 4:  # not just a character cut off by the sample end
            return "cp1252"
    return name


# --- RFC 2047 encoded words ----------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?\s]*)\?=")
_SPACE_BETWEEN_WORDS = re.compile(r"(\?=)[ \t\r\n]+(=\?)")


def _b64_lenient(data: bytes) -> bytes:
    """Decode base64 ignoring characters outside the alphabet and a broken tail."""
    kept = _fix_b64_padding(re.sub(rb"[^A-Za-z0-9+/]", b"", data))
    try:
        return binascii.a2b_base64(kept)
    except binascii.Error:  # pragma: no cover - kept is well-formed by construction
        return b""


def _fix_b64_padding(kept: bytes) -> bytes:
    rest = len(kept) % 4
    if rest == 1:
        return kept[:-1]
    if rest:
        return kept + b"=" * (4 - rest)
    return kept


def _decode_words(
    value: str, hint: str | None, where: str, notes: list[str], *, raw: bool = True
) -> str:
    """Decode a header value: raw 8-bit bytes first (UTF-8, else ``hint``), then RFC 2047 words.

    ``raw`` says ``value`` is still the latin-1 view of the header bytes; pass False for text
    that is already decoded (then only the encoded words are decoded). Adjacent encoded words
    with the same charset are joined as bytes before decoding, so a multi-byte character
    split across two words survives. Never raises.
    """
    if raw and not value.isascii():
        value = _decode_text(value.encode("latin-1"), hint or "utf-8", where, notes)
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
            out.append(_decode_text(bytes(pending), pending_charset, where, notes))
        pending = bytearray()
        pending_charset = ""

    for match in _ENCODED_WORD.finditer(value):
        if match.start() > pos:
            flush()
            out.append(value[pos : match.start()])
        charset = match.group(1).split("*", 1)[0].lower()  # RFC 2231 language suffix
        encoded = match.group(3).encode("ascii", "replace")
        if match.group(2) in "bB":
            kept = _fix_b64_padding(re.sub(rb"[^A-Za-z0-9+/]", b"", encoded))
            try:
                data = binascii.a2b_base64(kept)
            except binascii.Error:
                data = _b64_lenient(encoded)
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


# --- parameters (Content-Type, Content-Disposition) -----------------------------------------

_PARAM_SPLIT = re.compile(r'"(?:[^"\\]|\\.)*"?|;|[^";]+', re.S)


def _parse_params(
    value: str, hint: str | None, where: str, notes: list[str]
) -> tuple[str, dict[str, str]]:
    """Split ``type/sub; a=b; c*0*=...`` into the lowercased value and decoded parameters.

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
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1] if raw.endswith('"') and len(raw) > 1
                         else raw[1:])
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
        params[name] = _decode_words(raw, hint, where, notes)
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
        params[name] = _decode_text(bytes(data), charset or hint or "utf-8", where, notes)
    return main, params


_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")


def _percent_decode(text: str) -> bytes:
    raw = text.encode("latin-1", "replace")
    if b"%" not in raw:
        return raw
    return re.sub(rb"%([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), raw)


# --- transfer encodings --------------------------------------------------------------------

_B64_WS = b" \t\r\n"


def _decode_transfer(data: bytes, cte: str | None, where: str, notes: list[str]) -> bytes:
    """Undo a Content-Transfer-Encoding; bad base64 is decoded leniently with a note."""
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
        return _b64_lenient(compact)
    if cte == "quoted-printable":
        return binascii.a2b_qp(data)
    if cte not in ("7bit", "8bit", "binary", ""):
        notes.append(f"{where}: unknown transfer encoding {cte!r}, kept as is")
    return data


# --- structure: flanker ---------------------------------------------------------------------

_TOKEN_START = re.compile(r"\n(?=[-\r\nCc])")  # a lookahead: "\n\n--b" holds two line starts


def _tokenize(s: str) -> list[Any]:
    """Return flanker's token list for ``s``, the same as ``scanner.tokenize(s)`` but faster.

    flanker's expression (``scanner._RE_TOKENIZER``, ``^``-anchored in MULTILINE mode) can only
    match at a line start whose first character is ``-``, ``\\r``, ``\\n``, ``c`` or ``C``;
    it is tried only there, in order, never inside the previous match, exactly as
    ``finditer`` would. The tokens are built and filtered by flanker's own code.
    """
    regex = flanker_scanner._RE_TOKENIZER
    tokens: list[Any] = []
    last_end = 0

    def candidates() -> Iterable[int]:
        yield 0
        for found in _TOKEN_START.finditer(s):
            yield found.start() + 1

    for pos in candidates():
        if pos < last_end:
            continue
        match = regex.match(s, pos)
        if match is None:
            continue
        last_end = match.end()
        if match.group("ctype"):
            _name, token = flanker_parsing.parse_header(match.group("ctype"))
        elif match.group("boundary"):
            token = flanker_scanner.Boundary(
                match.group("boundary").strip("\t\r\n"),
                flanker_scanner._grab_newline(match.start(), s, -1),
                flanker_scanner._grab_newline(match.end(), s, 1),
            )
        else:
            token = flanker_scanner._EMPTY_LINE
        tokens.append(token)
    return list(flanker_scanner._filter_false_tokens(tokens))


def _flanker_tree(s: str, raw: bytes, notes: list[str]) -> _Node:
    """Scan ``s`` (``raw`` as latin-1) with flanker and convert the part tree to nodes.

    Raises whatever flanker raises (DecodingError for bad MIME, RecursionError).
    """
    tokens = _tokenize(s) or [flanker_scanner.default_content_type()]
    root = flanker_scanner.traverse(
        flanker_scanner.Start(), flanker_scanner.TokensIterator(tokens, s)
    )
    return _convert_flanker(root, s, raw, 0, notes)


def _convert_flanker(part: Any, s: str, raw: bytes, depth: int, notes: list[str]) -> _Node:
    stream = part._container  # flanker's Stream: offsets of the part in s
    end = stream.end + 1
    headers, body_start = _read_header_block(s, stream.start, end)
    ctype_token = part.content_type
    ctype = f"{ctype_token.main}/{ctype_token.sub}".lower()
    if ctype_token.is_multipart() and part.parts:
        if depth >= MAX_DEPTH:
            notes.append(f"multipart nested deeper than {MAX_DEPTH} levels kept as one part")
            return _Node(headers, ctype, raw[body_start:end], [], False)
        children = [_convert_flanker(p, s, raw, depth + 1, notes) for p in part.parts]
        return _Node(headers, ctype, b"", children, True)
    return _Node(headers, ctype, raw[body_start:end], [], False)


# --- structure: stdlib fallback --------------------------------------------------------------

_STDLIB_PARSER = email.parser.BytesParser(policy=email.policy.compat32)
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def _to_latin1(value: Any) -> str:
    """Turn a compat32 header value (str with surrogate escapes, or a Header) to latin-1 text."""
    if not isinstance(value, str):
        value = str(value)
    return _FOLD.sub("", _surrogate_bytes(value).decode("latin-1")).strip()


def _stdlib_tree(raw: bytes, notes: list[str]) -> _Node:
    """Read the structure with the stdlib parser (used when flanker's scanner gives up)."""
    return _convert_stdlib(_STDLIB_PARSER.parsebytes(raw), 0, notes)


def _convert_stdlib(msg: Message, depth: int, notes: list[str]) -> _Node:
    headers = [(name.strip().lower(), _to_latin1(value)) for name, value in msg.raw_items()]
    ctype = msg.get_content_type().lower()
    payload = msg.get_payload()
    if isinstance(payload, list):
        if ctype.startswith("message/"):
            body = b"".join(_stdlib_bytes(m) for m in payload if isinstance(m, Message))
            return _Node(headers, ctype, body, [], False)
        if depth >= MAX_DEPTH:
            notes.append(f"multipart nested deeper than {MAX_DEPTH} levels kept as one part")
            return _Node(headers, ctype, _stdlib_bytes(msg), [], False)
        children = [_convert_stdlib(m, depth + 1, notes) for m in payload if isinstance(m, Message)]
        return _Node(headers, ctype, b"", children, True)
    # get_payload() re-decodes 8-bit text with the declared charset; the raw str is wanted.
    raw_payload = getattr(msg, "_payload", payload)
    body = _surrogate_bytes(raw_payload) if isinstance(raw_payload, str) else b""
    if ctype.startswith("multipart/"):
        notes.append(f"{ctype} without usable boundary: body kept as text/plain")
        ctype = "text/plain"
    return _Node(headers, ctype, body, [], False)


def _surrogate_bytes(text: str) -> bytes:
    """Return the bytes behind a compat32 string (ASCII with surrogate-escaped 8-bit bytes)."""
    try:
        return text.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:  # real non-ASCII characters (set by the parser's own repairs)
        return text.encode("utf-8", "surrogateescape")


def _stdlib_bytes(msg: Message) -> bytes:
    try:
        return msg.as_bytes(policy=email.policy.compat32)
    except Exception:  # the generator can choke on broken parts; the text is all we need
        return str(msg).encode("utf-8", "surrogateescape")


# --- addresses -----------------------------------------------------------------------------

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_SIMPLE_ADDR = rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+"
_FAST_BARE = re.compile(rf"<?({_SIMPLE_ADDR})>?")
_FAST_NAMED = re.compile(rf'(?:"((?:[^"\\]|\\.)*)"|([^"<>,;:@()\\]*?))\s*<({_SIMPLE_ADDR})>')


def _split_addresses(value: str) -> list[str]:
    """Split an address-list header at top-level commas; group names and ``;`` are dropped."""
    if not any(ch in value for ch in '"(:;\\'):
        # No quoting, comments or groups: commas separate entries (fast path).
        return [entry.strip() for entry in value.split(",") if entry.strip()]
    entries: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    angle = 0
    comment = 0
    for ch in value:
        if escaped:
            escaped = False
            current.append(ch)
            continue
        if ch == "\\" and (quoted or comment):
            escaped = True
            current.append(ch)
            continue
        if quoted:
            if ch == '"':
                quoted = False
            current.append(ch)
            continue
        if ch == "(":
            comment += 1
        elif ch == ")" and comment:
            comment -= 1
        elif comment:
            pass
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle += 1
        elif ch == ">" and angle:
            angle -= 1
        elif angle:
            pass
        elif ch in ",;":
            entries.append("".join(current))
            current = []
            continue
        elif ch == ":":
            current = []  # "group-name:" starts a group; the name is no address
            continue
        current.append(ch)
    entries.append("".join(current))
    return [e.strip() for e in entries if e.strip()]


def _normalise_addr(addr: str) -> str:
    local, at, domain = addr.rpartition("@")
    return f"{local}@{domain.lower()}" if at else addr


def _display_name(entry: str, hint: str | None, notes: list[str]) -> str:
    """Return the decoded display name of a ``name <addr>`` entry, "" for a bare address."""
    head = entry.split("<", 1)[0].strip() if "<" in entry else ""
    if head.startswith('"') and head.endswith('"') and len(head) >= 2:
        head = re.sub(r"\\(.)", r"\1", head[1:-1])
    return " ".join(_decode_words(head, hint, "address", notes, raw=False).split())


def _parse_address(entry: str, hint: str | None, notes: list[str]) -> tuple[str, str] | None:
    """Return (addr-spec with lowercased domain, display name) of one entry, None if unusable."""
    fast = _FAST_BARE.fullmatch(entry)
    if fast:
        return _normalise_addr(fast.group(1)), ""
    fast = _FAST_NAMED.fullmatch(entry)
    if fast and "=?" not in entry:
        name = fast.group(1)
        name = re.sub(r"\\(.)", r"\1", name) if name is not None else (fast.group(2) or "")
        return _normalise_addr(fast.group(3)), " ".join(name.split())
    parsed = None
    if len(entry) <= _MAX_ADDRESS:  # flanker rejects longer ones anyway (and logs each)
        try:
            parsed = flanker_address.parse(entry)
        except Exception:  # flanker's grammar raises on some inputs instead of returning None
            parsed = None
    if parsed is not None and getattr(parsed, "addr_type", "email") == "email" and parsed.address:
        return _normalise_addr(str(parsed.address)), _display_name(entry, hint, notes)
    # flanker cannot cope (e.g. a dotless domain with odd quoting): try the stdlib, accept
    # only something that looks like local@domain.
    _name, addr = email.utils.parseaddr(entry)
    local, at, domain = addr.rpartition("@")
    if at and local and domain and "@" not in local and " " not in addr:
        return _normalise_addr(addr), _display_name(entry, hint, notes)
    return None


def _address_list(
    values: list[str], field_name: str, hint: str | None, notes: list[str]
) -> list[tuple[str, str]]:
    """Parse every address of the given header values; bad entries are dropped with a note."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for value in values:
        text = value
        if not text.isascii():
            text = _decode_text(text.encode("latin-1"), hint or "utf-8", field_name, notes)
        for entry in _split_addresses(text):
            parsed = _parse_address(entry, hint, notes)
            if parsed is None:
                notes.append(f"{field_name}: dropped unparseable address {entry[:200]!r}")
                continue
            if parsed[0].lower() not in seen:
                seen.add(parsed[0].lower())
                found.append(parsed)
    return found


# --- other fields --------------------------------------------------------------------------


def _message_id(value: str | None) -> str | None:
    """Return the Message-ID without <> and white space, None when missing or unusable."""
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


def _parse_date(value: str | None, notes: list[str]) -> datetime | None:
    """Return the Date as an aware UTC datetime, None (with a note) when unparseable."""
    if value is None:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        parsed = None
    if parsed is None:
        notes.append(f"date: unparseable Date header {value[:100]!r}")
        return None
    if parsed.tzinfo is None:  # "-0000": no zone information; RFC 5322 says read it as UTC
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        notes.append(f"date: Date header out of range {value[:100]!r}")
        return None


# --- content hash --------------------------------------------------------------------------


def _lf(data: bytes) -> bytes:
    """Return ``data`` with CRLF and lone CR line endings turned into LF."""
    data = data.replace(b"\r\n", b"\n")
    return data.replace(b"\r", b"\n") if b"\r" in data else data


def _content_hash(raw: bytes, body_start: int) -> str:
    """Return the sha256 of ``raw`` without trace headers and with \\n line endings.

    Only the top-level header block is filtered (an mbox From_ line counts as trace); the
    body is hashed as is apart from line endings, and trailing line breaks count as one.
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
    digest.update(_lf(raw[body_start:]).rstrip(b"\n"))
    digest.update(b"\n")
    return digest.hexdigest()


# --- extraction ----------------------------------------------------------------------------


def _is_message_header_block(headers: list[tuple[str, str]]) -> bool:
    return any(name in _MESSAGE_FIELDS for name, _ in headers)


def _first_charset(node: _Node, depth: int = 0) -> str | None:
    """Return the first declared charset of a text part, a hint for raw 8-bit headers."""
    if depth > MAX_DEPTH:
        return None
    value = node.get("content-type")
    if value and "charset" in value.lower():
        match = re.search(r"charset\s*=\s*\"?([A-Za-z0-9_.:+-]+)", value, re.I)
        if match:
            return match.group(1)
    for child in node.children:
        found = _first_charset(child, depth + 1)
        if found:
            return found
    return None


@dataclass(slots=True)
class _Bodies:
    text: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[ParsedAttachment] = field(default_factory=list)


def _collect(node: _Node, hint: str | None, out: _Bodies, notes: list[str]) -> None:
    """Sort the leaves under ``node`` into text bodies, HTML bodies and attachments."""
    if node.is_multipart:
        for child in node.children:
            _collect(child, hint, out, notes)
        return
    content_type = node.get("content-type")
    ctype_params: dict[str, str] = {}
    if content_type is not None:
        _main, ctype_params = _parse_params(content_type, hint, "content-type", notes)
    disposition_value = node.get("content-disposition")
    disposition: str | None = None
    disp_params: dict[str, str] = {}
    if disposition_value is not None:
        disposition, disp_params = _parse_params(
            disposition_value, hint, "content-disposition", notes
        )
        disposition = disposition or None
    filename = disp_params.get("filename") or ctype_params.get("name") or None
    ctype = node.ctype
    label = f"part {filename!r}" if filename else f"{ctype} part"
    content = _decode_transfer(node.body, node.get("content-transfer-encoding"), label, notes)
    if (
        ctype in ("text/plain", "text/html")
        and disposition != "attachment"
        and filename is None
    ):
        where = "text part" if ctype == "text/plain" else "html part"
        text = _decode_text(content, ctype_params.get("charset"), where, notes)
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        (out.text if ctype == "text/plain" else out.html).append(text)
        return
    content_id = node.get("content-id")
    if content_id is not None:
        content_id = content_id.strip().strip("<>").strip() or None
        if content_id is not None and not content_id.isascii():
            content_id = _decode_words(content_id, hint, "content-id", notes)
    if disposition == "inline":
        inline = True
    elif disposition == "attachment":
        inline = False
    else:
        inline = content_id is not None
    out.attachments.append(ParsedAttachment(filename, ctype, content, content_id, inline))


def _build(raw: bytes, max_size: int | None) -> ParsedMessage:
    if max_size is not None and len(raw) > max_size:
        raise MessageTooLargeError(len(raw), max_size)
    if not raw.strip():
        raise MessageParseError("empty", "the message has no content")
    s = raw.decode("latin-1")
    notes: list[str] = []
    headers, body_start = _read_header_block(s, 0, len(s))
    if not headers or not _is_message_header_block(headers):
        raise MessageParseError("not_a_message", "the input does not start with a header block")
    if "\x00" in s[:body_start]:
        raise MessageParseError("not_a_message", "the header block holds NUL bytes (binary data)")

    root_ctype = next((v for k, v in headers if k == "content-type"), "")
    root_type = root_ctype.split(";", 1)[0].strip().lower()
    tree: _Node
    if not root_type.startswith(("multipart/", "message/")):
        # A single part: the scanner would find just headers and body, which we have.
        main = root_type if re.fullmatch(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", root_type) \
            else "text/plain"
        tree = _Node(headers, main, raw[body_start:], [], False)
    else:
        try:
            tree = _flanker_tree(s, raw, notes)
        except Exception as flanker_error:  # DecodingError, RecursionError, flanker bugs
            try:
                tree = _stdlib_tree(raw, notes)
            except Exception as stdlib_error:  # RecursionError on pathological nesting
                raise MessageParseError(
                    "malformed_mime",
                    f"flanker: {flanker_error!r}; stdlib email: {stdlib_error!r}",
                ) from stdlib_error
            notes.append(f"MIME structure read by the stdlib parser: flanker said {flanker_error}")
        tree.headers = headers  # the root's fields, as read above

    hint = _first_charset(tree)

    def values(name: str) -> list[str]:
        return [v for k, v in headers if k == name]

    def first(name: str, label: str) -> str | None:
        found = values(name)
        if len(found) > 1:
            notes.append(f"{label}: {len(found)} headers, the first one used")
        return found[0] if found else None

    subject_value = first("subject", "subject")
    subject = _decode_words(subject_value, hint, "subject", notes) if subject_value else ""
    subject = subject.replace("\t", " ").strip()

    from_value = first("from", "from")
    senders = _address_list([from_value], "from", hint, notes) if from_value else []
    sender, sender_name = senders[0] if senders else ("", "")

    to = tuple(a for a, _ in _address_list(values("to"), "to", hint, notes))
    cc = tuple(a for a, _ in _address_list(values("cc"), "cc", hint, notes))
    bcc = tuple(a for a, _ in _address_list(values("bcc"), "bcc", hint, notes))
    date = _parse_date(first("date", "date"), notes)
    message_id = _message_id(first("message-id", "message-id"))

    bodies = _Bodies()
    _collect(tree, hint, bodies, notes)
    html = "\n".join(bodies.html)
    text = "\n".join(bodies.text) if bodies.text else (html_to_text(html) if html else "")

    return ParsedMessage(
        message_id=message_id,
        subject=subject,
        sender=sender,
        sender_name=sender_name,
        to=to,
        cc=cc,
        bcc=bcc,
        date=date,
        text=text,
        html=html,
        attachments=tuple(bodies.attachments),
        content_hash=_content_hash(raw, body_start),
        size=len(raw),
        raw=raw,
        notes=tuple(dict.fromkeys(notes)),
    )


def parse_message(raw: bytes, *, max_size: int | None = None) -> ParsedMessage:
    """Parse the raw bytes of one message (RFC 5322 / MIME) into a :class:`ParsedMessage`.

    Returns the parsed message; what was repaired or guessed is listed in its ``notes``.
    Raises :class:`MessageTooLargeError` when ``max_size`` is given and ``len(raw)`` exceeds it,
    and :class:`MessageParseError` (``reason`` ``empty``, ``not_a_message`` or
    ``malformed_mime``) for input that is not a usable message (see the module docstring).
    No other exception escapes, for any input.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise MessageParseError("not_a_message", f"expected bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    try:
        return _build(raw, max_size)
    except MessageParseError:
        raise
    except RecursionError as error:
        raise MessageParseError("malformed_mime", "structure nested too deeply") from error
    except Exception as error:  # a bug or a flanker fault: report it, do not crash the caller
        raise MessageParseError(
            "malformed_mime", f"unexpected {type(error).__name__}: {error}"
        ) from error
