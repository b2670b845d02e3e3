"""Tests of mail_pipeline.mime.html_text: readable text from HTML."""

from __future__ import annotations

import re
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mail_pipeline.mime.html_text as html_text
from mail_pipeline.mime.html_text import html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("a<br>b<br/>c", "a\nb\nc"),
        ("a<br><br>b", "a\n\nb"),
        ("<div>x</div><div>y</div>", "x\ny"),
        ("Fish &amp; chips &lt;3 &eacute;t&#233; &#x263A;", "Fish & chips <3 été ☺"),
        ("<style>p{color:red}</style><script>alert(1)</script>visible", "visible"),
        ("<head><title>T</title></head><body>body</body>", "body"),
        ("  lots   of\n\n white\tspace  ", "lots of white space"),
        ("<ul><li>one</li><li>two</li></ul>", "- one\n- two"),
        ("<pre>a  b\n  c</pre>", "a  b\n  c"),
        ("<table><tr><td>1</td><td>2</td></tr><tr><td>3</td></tr></table>", "1 2\n3"),
        ("<p>unclosed <b>tags", "unclosed tags"),
        ("", ""),
        ("x < y", "x < y"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def _document(rows: int) -> str:
    row = (
        '<tr><td class="a&lt;b">caf&eacute; &amp;  x</td>\n<td>y&#233;</td></tr>'
        "<!-- a < comment --><pre>p  q\n r</pre><br/><script>if (a < b) {}</script>"
        '<p title="x<y">  t\u00a0 u </p>\n\n\n<li>i</li>'
    )
    return f"<html><body><table>{row * rows}</table></body></html>"


@pytest.mark.parametrize(("feed", "sub"), [(7, 5), (50, 64), (1, 1)])
def test_a_long_document_converted_in_pieces_reads_as_converted_at_once(
    monkeypatch: pytest.MonkeyPatch, feed: int, sub: int
) -> None:
    html = _document(60)
    at_once = html_to_text(html)
    assert "café & x" in at_once and "p  q" in at_once
    monkeypatch.setattr(html_text, "_FEED_CHUNK", feed)
    monkeypatch.setattr(html_text, "_SUB_CHUNK", sub)
    assert html_to_text(html) == at_once


_FRAGMENTS = [
    "<p>",
    "</p>",
    "<br>",
    "<li>",
    "<pre>",
    "</pre>",
    "<td>",
    "<script>",
    "</script>",
    "<!--",
    "-->",
    "<a href='x<y'>",
    "&amp;",
    "&eacute",
    "&#23",
    "text",
    " ",
    "\n",
    "\u00a0",
    "<",
    ">",
    "\x00",
    "N",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=60), st.integers(1, 9))
def test_any_markup_converted_in_pieces_reads_as_converted_at_once(
    fragments: list[str], size: int
) -> None:
    html = "".join(fragments)
    at_once = html_to_text(html)
    with (
        mock.patch.object(html_text, "_FEED_CHUNK", size),
        mock.patch.object(html_text, "_SUB_CHUNK", size),
    ):
        assert html_to_text(html) == at_once


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["a", " b ", "", " ", "\ue000c", "\t", "\n", "d\u00a0"]), max_size=40),
    st.lists(st.integers(0, 40), max_size=6),
)
def test_lines_written_in_pieces_read_as_the_whole_text_tidied_at_once(
    tokens: list[str], cuts: list[int]
) -> None:
    text = "".join(tokens)
    # the definition: split, strip each line, join, at most one blank line, none at the ends
    lines = [line.strip(" ").replace("\ue000", " ").rstrip() for line in text.split("\n")]
    expected = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    writer = html_text._Lines()
    out, start = "", 0
    for cut in sorted(min(c, len(text)) for c in cuts):
        out += writer.take(text[start:cut])
        start = max(start, cut)
    out += writer.take(text[start:])
    assert out + writer.end() == expected
