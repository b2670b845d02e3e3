"""HTML to readable plain text, for messages that carry only an HTML body.

This is deliberately small: the stdlib :class:`html.parser.HTMLParser` (tolerant of broken
markup, never raises on bad input) plus a few rules — block elements end lines, ``<br>`` is a
line break, ``<li>`` starts a ``- `` item, ``<script>``/``<style>``/``<head>`` content is
dropped, entities are unescaped, runs of white space collapse to one space and runs of blank
lines to one blank line, ``<pre>`` keeps its white space.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
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

    A long document is converted as it is fed, a piece at a time: the text is held once, plus
    the piece in the making.
    """
    if not html:
        return ""
    parser = _Extractor()
    lines = _Lines()
    # Grown in place: CPython extends a string that only this local holds, so the text is
    # never held twice (as pieces and as their join).
    text = ""
    pending = ""  # the parser's output not yet tidied: no cut is safe in it yet
    try:
        for chunk in _chunks(html, _FEED_CHUNK):
            parser.feed(chunk)
            searched = len(pending)  # no safe cut before it: look only at what is new
            pending += "".join(parser.out)
            parser.out.clear()
            cut = _last_safe_cut(pending, _SUB_CHUNK, searched)
            if cut:
                text += lines.take(_tidy(pending[:cut]))
                pending = pending[cut:]
        parser.close()
    except (AssertionError, ValueError):  # pragma: no cover - HTMLParser is tolerant
        pass
    text += lines.take(_tidy(pending + "".join(parser.out)))
    text += lines.end()
    return text


def _tidy(text: str) -> str:
    """Return ``text`` with white space collapsed and the markers turned into line breaks.

    Applied to pieces cut where :func:`_last_safe_cut` says, it gives what it gives applied to
    their concatenation.
    """
    # Collapse ordinary white space first; the markers are NUL-prefixed and survive it.
    return _MARKS.sub(_breaks, _SPACES.sub(" ", text))


class _Lines:
    """The text's lines as they come: each stripped, runs of blank lines kept as one blank
    line, none at either end (what splitting the whole text, stripping each line, joining and
    collapsing ``\n{3,}`` to ``\n\n`` would give)."""

    def __init__(self) -> None:
        self.carry = ""  # the last line taken, which may go on in the next piece
        self.started = False  # a non-blank line was given out
        self.blank = False  # a blank line came after the last line given out

    def take(self, text: str) -> str:
        """Take the next piece of tidied text; return the text it completes."""
        if not text:
            return ""
        rows = (self.carry + text).split("\n")
        self.carry = rows.pop()
        return self._keep(rows)

    def end(self) -> str:
        """Return the rest of the text (after the last :meth:`take`)."""
        rest, self.carry = self.carry, ""
        return self._keep([rest])

    def _keep(self, rows: list[str]) -> str:
        if not rows:
            return ""
        lines = [row.strip(" ").replace(_PRE_SPACE, " ").rstrip() for row in rows]
        body = _BLANK_LINES.sub("\n\n", "\n".join(lines))
        kept = body.strip("\n")
        if not kept:  # only blank lines
            self.blank = self.started
            return ""
        gap = ("\n\n" if self.blank or body[0] == "\n" else "\n") if self.started else ""
        self.started, self.blank = True, body[-1] == "\n"
        return gap + kept


_BLANK_LINES = re.compile(r"\n{3,}")

#: HTML fed to the parser per step; a document up to twice this size is fed at once.
_FEED_CHUNK = 1 << 18
#: Untidied text held before it is tidied in a piece (see :func:`_last_safe_cut`).
_SUB_CHUNK = 1 << 18
# The last character no white-space run or marker run can hold, after a character that is
# not a NUL (the character after a NUL belongs to its marker).
_LAST_CUT = re.compile(r"(?s).*[^\x00]([^ \t\r\n\f\v\u00a0\u200b\x00])")


def _last_safe_cut(text: str, keep: int, start: int = 0) -> int:
    """Return the last offset of ``text`` after ``start`` where a cut is safe, 0 when there is
    none or ``text`` is at most ``keep`` characters long (it is then tidied with what follows).

    A cut is safe before a character that no white-space run or marker run can hold and that
    does not follow a NUL (the character after a NUL belongs to its marker): no match of
    :data:`_SPACES` or :data:`_MARKS` spans it, so the pieces tidy as the whole would. The
    caller passes as ``start`` how much of ``text`` it already searched, so a document with no
    safe cut for a long stretch (only ``<br>``, say) is searched once, not once per feed.
    """
    if len(text) <= keep:
        return 0
    found = _LAST_CUT.match(text, max(start - 1, 0))
    return found.start(1) if found is not None else 0


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
