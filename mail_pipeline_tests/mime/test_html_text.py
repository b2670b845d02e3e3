"""Tests of mail_pipeline.mime.html_text: readable text from HTML."""

from __future__ import annotations

import pytest

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
