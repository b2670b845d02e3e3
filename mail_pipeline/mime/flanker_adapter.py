"""The only module that talks to flanker: its MIME scanner and its address parser.

flanker (0.9.11) finds the content types and boundaries of a message and builds its part
tree; :func:`scan` returns that tree as :class:`Span` offsets into the scanned string, so no
flanker object leaves this module. :func:`parse_addr_spec` wraps
``flanker.addresslib.address.parse``.

Private flanker names used here, and why (each is checked by
``mail_pipeline_tests/mime/test_flanker_adapter.py``, and a missing one fails the import):

* ``scanner._RE_TOKENIZER``, ``scanner._grab_newline``, ``scanner._EMPTY_LINE`` and
  ``scanner._filter_false_tokens``: ``scanner.tokenize`` runs its expression at every
  position of the message (≈0.7 ms for 20 KB, most of a parse). :func:`tokenize` builds the
  identical token list by trying the same expression only at line starts that can begin a
  token, with flanker's own token constructors and filter.
* ``MimePart._container`` (a ``Stream`` with ``start``/``end`` offsets): flanker has no
  public way to say where a part lies in the scanned string; ``to_string()`` copies it and
  re-walks the subtree for every part.
* ``scanner.TokensIterator``'s attributes (``position``, ``tokens``, ``string``, ``stream``,
  ``opcount``): its constructor copies the whole message into an ``io.StringIO``, which holds
  4 bytes per character (a 25 MB message took 100 MB there), only so that the scanner can find
  the first empty line after a ``message/*`` part's start. :class:`_Tokens` sets the same
  attributes with :class:`_LineStream`, which reads those lines from the string itself.

flanker builds its address parsers with ply when it is first imported, and ply reports on
them through flanker's parser and lexer loggers: "Generating LALR tables", a warning per
unreachable symbol, "Couldn't create ..." when the tables cannot be written. Those loggers
are set to ERROR before flanker is imported (:data:`PLY_LOGGERS`), so a first import prints
nothing; the parsers are the same either way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: The loggers ply reports through while flanker builds its parsers (``errorlog=log`` in
#: ``flanker/addresslib/_parser/parser.py`` and ``lexer.py``).
PLY_LOGGERS = ("flanker.addresslib._parser.parser", "flanker.addresslib._parser.lexer")
for _name in PLY_LOGGERS:
    logging.getLogger(_name).setLevel(logging.ERROR)

from flanker.addresslib import address as flanker_address  # noqa: E402 (after the loggers)
from flanker.mime.message import scanner as flanker_scanner  # noqa: E402
from flanker.mime.message.headers import parsing as flanker_parsing  # noqa: E402

__all__ = ["Span", "parse_addr_spec", "scan", "tokenize"]

# The private names this module relies on, looked up once: a flanker without them fails here.
_RE_TOKENIZER: Any = flanker_scanner._RE_TOKENIZER
_grab_newline: Any = flanker_scanner._grab_newline
_EMPTY_LINE: Any = flanker_scanner._EMPTY_LINE
_filter_false_tokens: Any = flanker_scanner._filter_false_tokens

_TOKENS_ITERATOR: Any = flanker_scanner.TokensIterator

_MAX_ADDRESS = 1024  # flanker's own limit for one address (it logs every longer one)
_TOKEN_START = re.compile(r"\n(?=[-\r\nCc])")  # a lookahead: "\n\n--b" holds two line starts


@dataclass(slots=True)  # not frozen: a frozen dataclass is 4x slower to build
class Span:
    """Where one part of the scanned message lies, as flanker's scanner found it.

    ``start`` is the offset of the part's first character (its header block), ``end`` the
    offset just past its last. ``multipart`` is true for a ``multipart/*`` part that has
    parts; its ``children`` are empty only when :func:`scan` stopped descending there.
    """

    start: int
    end: int
    content_type: str  # lowercased "type/subtype"
    multipart: bool
    children: tuple[Span, ...]


def tokenize(s: str) -> list[Any]:
    """Return flanker's token list for ``s``, the same as ``scanner.tokenize(s)`` but faster.

    flanker's expression (``^``-anchored in MULTILINE mode) can only match at a line start
    whose first character is ``-``, ``\\r``, ``\\n``, ``c`` or ``C``; it is tried only there,
    in order, never inside the previous match, exactly as ``finditer`` would. The tokens are
    built and filtered by flanker's own code. Raises what flanker's header parser raises for
    a bad ``Content-Type`` line.
    """
    tokens: list[Any] = []
    last_end = 0

    def candidates() -> Iterator[int]:
        yield 0
        for found in _TOKEN_START.finditer(s):
            yield found.start() + 1

    for pos in candidates():
        if pos < last_end:
            continue
        match = _RE_TOKENIZER.match(s, pos)
        if match is None:
            continue
        last_end = match.end()
        if match.group("ctype"):
            _name, token = flanker_parsing.parse_header(match.group("ctype"))
        elif match.group("boundary"):
            token = flanker_scanner.Boundary(
                match.group("boundary").strip("\t\r\n"),
                _grab_newline(match.start(), s, -1),
                _grab_newline(match.end(), s, 1),
            )
        else:
            token = _EMPTY_LINE
        tokens.append(token)
    return list(_filter_false_tokens(tokens))


class _LineStream:
    """The part of ``io.StringIO`` flanker's scanner uses (``seek``, ``tell``, line iteration,
    lines split after ``\\n`` as ``StringIO`` does), reading the string in place."""

    def __init__(self, string: str) -> None:
        self._string = string
        self._pos = 0

    def seek(self, pos: int) -> int:
        """Move to offset ``pos``; return it."""
        self._pos = pos
        return pos

    def tell(self) -> int:
        """Return the offset just past the last line read."""
        return self._pos

    def __iter__(self) -> Iterator[str]:
        string = self._string
        while self._pos < len(string):
            end = string.find("\n", self._pos)
            end = len(string) if end < 0 else end + 1
            line = string[self._pos : end]
            self._pos = end
            yield line


class _Tokens(_TOKENS_ITERATOR):  # type: ignore[misc]  # flanker is untyped
    """flanker's ``TokensIterator`` without its copy of the message (see the module
    docstring)."""

    def __init__(self, tokens: list[Any], string: str) -> None:  # no super(): that copies
        self.position = -1
        self.tokens = tokens
        self.string = string
        self.stream = _LineStream(string)
        self.opcount = 0


def scan(s: str, max_depth: int) -> Span:
    """Return the part tree of message ``s`` (raw bytes as latin-1) as read by flanker.

    Multipart parts deeper than ``max_depth`` levels are returned without children. Raises
    whatever flanker raises (``DecodingError`` for bad MIME, such as a multipart without a
    boundary or more than 5,000 tokens; ``RecursionError``).
    """
    tokens = tokenize(s) or [flanker_scanner.default_content_type()]
    root = flanker_scanner.traverse(flanker_scanner.Start(), _Tokens(tokens, s))
    return _span(root, 0, max_depth)


def _span(part: Any, depth: int, max_depth: int) -> Span:
    """Return the :class:`Span` of flanker part ``part`` at nesting ``depth``."""
    stream = part._container  # flanker's Stream: offsets of the part in the scanned string
    token = part.content_type
    ctype = f"{token.main}/{token.sub}".lower()
    multipart = bool(token.is_multipart() and part.parts)
    children: tuple[Span, ...] = ()
    if multipart and depth < max_depth:
        children = tuple(_span(p, depth + 1, max_depth) for p in part.parts)
    return Span(stream.start, stream.end + 1, ctype, multipart, children)


def parse_addr_spec(entry: str) -> str | None:
    """Return the addr-spec of one address-list entry as flanker parses it, None when flanker
    rejects it (or it is no e-mail address, or longer than flanker's limit). Never raises."""
    if len(entry) > _MAX_ADDRESS:
        return None
    try:
        parsed = flanker_address.parse(entry)
    except Exception:  # flanker's grammar raises on some inputs instead of returning None
        return None
    if parsed is None or getattr(parsed, "addr_type", "email") != "email" or not parsed.address:
        return None
    return str(parsed.address)
