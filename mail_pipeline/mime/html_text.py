"""HTML to readable plain text, for messages that carry only an HTML body.

This is deliberately small: the stdlib :class:`html.parser.HTMLParser` (tolerant of broken
markup, never raises on bad input) plus a few rules — block elements end lines, ``<br>`` is a
line break, ``<li>`` starts a ``- `` item, ``<script>``/``<style>``/``<head>`` content is
dropped, entities are unescaped, runs of white space collapse to one space and runs of blank
lines to one blank line, ``<pre>`` keeps its white space.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser

__all__ = ["html_to_text"]

# Elements whose start and end both end the current line.
_BLOCK = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "center",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "tr",
        "ul",
        "body",
        "html",
        "caption",
    }
)
# Elements after which a blank line reads naturally.
_PARAGRAPH = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "pre"})
# Elements whose content is never text for a reader.
_DROP = frozenset({"script", "style", "head", "title", "template", "noscript", "object"})
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "wbr", "area", "base", "col"})

_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0\u200b]+")
_MARK_NL = "\x00N"
_MARK_PAR = "\x00P"
_MARK_BR = "\x00B"
_PRE_SPACE = "\ue000"  # a space inside <pre>, protected from collapsing


_MARKS = re.compile(r"(?: ?\x00[NPB])+ ?")


def _breaks(match: re.Match[str]) -> str:
    # A run of block markers is one line break, a blank line if one of them was a paragraph;
    # every <br> counts; never more than one blank line.
    run = match.group(0)
    count = max(run.count(_MARK_BR), 2 if _MARK_PAR in run else 1)
    return "\n" * min(count, 2)


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.drop_depth = 0
        self.pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP:
            if tag not in _VOID:
                self.drop_depth += 1
            return
        if tag == "br":
            self.out.append(_MARK_BR)
        elif tag == "li":
            self.out.append(_MARK_NL + "- ")
        elif tag in ("td", "th"):
            self.out.append(" ")
        elif tag in _PARAGRAPH:
            self.out.append(_MARK_PAR)
        elif tag in _BLOCK:
            self.out.append(_MARK_NL)
        if tag == "pre":
            self.pre_depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <hr/>, <div/> ...: a start without content.
        if tag in _DROP:
            return
        if tag == "br":
            self.out.append(_MARK_BR)
        elif tag in _BLOCK:
            self.out.append(_MARK_NL)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP:
            if self.drop_depth:
                self.drop_depth -= 1
            return
        if tag == "pre" and self.pre_depth:
            self.pre_depth -= 1
        if tag in _PARAGRAPH:
            self.out.append(_MARK_PAR)
        elif tag in _BLOCK:
            self.out.append(_MARK_NL)

    def handle_data(self, data: str) -> None:
        if self.drop_depth:
            return
        if self.pre_depth:
            # Keep the layout of preformatted text: its newlines become hard breaks.
            self.out.append(
                _MARK_NL.join(line.replace(" ", _PRE_SPACE) for line in data.split("\n")).replace(
                    "\t", _PRE_SPACE * 4
                )
            )
        else:
            self.out.append(data)


def html_to_text(html: str) -> str:
    """Return the readable text of an HTML document or fragment.

    Block elements become line breaks (paragraph-like ones a blank line), ``<br>`` a line
    break, list items ``- item`` lines; ``<script>``, ``<style>``, ``<head>`` and similar content
    is dropped; character references are unescaped; white space collapses. Never raises for
    any input string; returns ``""`` for markup without text.
    """
    if not html:
        return ""
    parser = _Extractor()
    pieces: list[str] = []
    try:
        for chunk in _chunks(html, _FEED_CHUNK):
            parser.feed(chunk)
            # one string per fed chunk, not one per text run and marker (≈50 bytes each)
            pieces.append("".join(parser.out))
            parser.out.clear()
        parser.close()
    except (AssertionError, ValueError):  # pragma: no cover - HTMLParser is tolerant
        pass
    pieces.append("".join(parser.out))
    joined = "".join(pieces)
    del pieces
    # Collapse ordinary white space first; the markers are NUL-prefixed and survive it.
    joined = _sub_in_pieces(_SPACES, " ", joined)
    joined = _sub_in_pieces(_MARKS, _breaks, joined)
    lines = joined.split("\n")
    del joined  # each step below holds at most two copies of the text
    lines = [line.strip(" ").replace(_PRE_SPACE, " ").rstrip() for line in lines]
    text = "\n".join(lines)
    del lines
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")


#: HTML fed to the parser per step; a document up to twice this size is fed at once.
_FEED_CHUNK = 1 << 18
#: Text substituted per step by :func:`_sub_in_pieces` (likewise).
_SUB_CHUNK = 1 << 20
# A character no white-space run or marker run can hold (the character after a NUL can be).
_PLAIN = re.compile(r"[^ \t\r\n\f\v\u00a0\u200b\x00]")


def _sub_in_pieces(
    pattern: re.Pattern[str], repl: str | Callable[[re.Match[str]], str], text: str
) -> str:
    """Return ``pattern.sub(repl, text)``, for :data:`_SPACES` or :data:`_MARKS`, made piece by
    piece: ``re.sub`` keeps every piece of its result as a string object (≈50 bytes each)
    until it joins them, 12x the text for a long document with a space every few characters.

    A cut lies before a character that neither pattern can match, after a character that is
    not a NUL: no match spans it, so the pieces give what the whole text gives.
    """
    if len(text) <= 2 * _SUB_CHUNK:
        return pattern.sub(repl, text)
    out: list[str] = []
    pos = 0
    while pos < len(text):
        cut = _plain_at_or_after(text, pos + _SUB_CHUNK)
        out.append(pattern.sub(repl, text[pos:cut]))
        pos = cut
    return "".join(out)


def _plain_at_or_after(text: str, start: int) -> int:
    """Return the first offset >= ``start`` where a cut is safe (see :func:`_sub_in_pieces`),
    ``len(text)`` when there is none."""
    found = _PLAIN.search(text, start)
    while found is not None and text[found.start() - 1] == "\x00":
        found = _PLAIN.search(text, found.start() + 1)
    return found.start() if found is not None else len(text)


def _chunks(html: str, size: int) -> list[str] | Iterator[str]:
    """Return ``html`` in pieces of about ``size`` characters, each cut just before a ``<``.

    A run of text then never spans two pieces (it ends at a ``<``), so the parser sees every
    text run whole, as if fed the document at once; a tag cut in two (a ``<`` inside an
    attribute value) is held back by the parser until the rest arrives.
    """
    if len(html) <= 2 * size:
        return [html]
    return _cut_before_tags(html, size)


def _cut_before_tags(html: str, size: int) -> Iterator[str]:
    pos = 0
    while pos < len(html):
        cut = html.find("<", pos + size)
        if cut < 0:
            yield html[pos:]
            return
        yield html[pos:cut]
        pos = cut
