"""HTML to readable plain text, for messages that carry only an HTML body.

This is deliberately small: the stdlib :class:`html.parser.HTMLParser` (tolerant of broken
markup, never raises on bad input) plus a few rules — block elements end lines, ``<br>`` is a
line break, ``<li>`` starts a ``- `` item, ``<script>``/``<style>``/``<head>`` content is
dropped, entities are unescaped, runs of white space collapse to one space and runs of blank
lines to one blank line, ``<pre>`` keeps its white space.
"""

from __future__ import annotations

import re
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
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):  # pragma: no cover - HTMLParser is tolerant
        pass
    joined = "".join(parser.out)
    # Collapse ordinary white space first; the markers are NUL-prefixed and survive it.
    joined = _SPACES.sub(" ", joined)
    joined = _MARKS.sub(_breaks, joined)
    lines = [line.strip(" ").replace(_PRE_SPACE, " ").rstrip() for line in joined.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")
