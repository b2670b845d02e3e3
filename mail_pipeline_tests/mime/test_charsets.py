"""Tests of mail_pipeline.mime.charsets: bodies decoded with their label, and the fallbacks
for wrong, unknown and unusable labels (through parse_message and directly)."""

from __future__ import annotations

import pytest

from mail_pipeline.mime import parse_message
from mail_pipeline.mime.charsets import decode_text
from mail_pipeline_tests.data import corpus_tools


def _text_message(body: bytes, charset: str | None, cte: str = "8bit") -> bytes:
    ctype = "text/plain" + (f"; charset={charset}" if charset else "")
    head = (
        "From: a@example.org\r\nTo: b@example.org\r\nSubject: t\r\n"
        f"Content-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    )
    return head.encode("ascii") + body


@pytest.mark.parametrize(
    ("text", "charset"),
    [
        ("café crème brûlée", "iso-8859-1"),
        ("café crème “quoted”", "windows-1252"),
        ("Zażółć gęślą jaźń", "iso-8859-2"),
        ("Привет, мир", "koi8-r"),
        ("Привет, мир", "windows-1251"),
        ("日本語のメール", "shift_jis"),
        ("日本語のメール", "euc-jp"),
        ("한국어 메일", "euc-kr"),
        ("中文邮件", "gb2312"),
        ("繁體中文郵件", "big5"),
        ("emoji 😀 and ümlaut", "utf-8"),
    ],
)
def test_correctly_labelled_8bit_text_is_decoded_with_its_charset(text: str, charset: str) -> None:
    msg = parse_message(_text_message(text.encode(charset), charset))
    assert msg.text == text
    assert msg.notes == ()


def test_gbk_text_labelled_gb2312_is_decoded_as_gb18030_with_a_note() -> None:
    text = "朱镕基"  # 镕 is GBK, not GB2312
    with pytest.raises(UnicodeDecodeError):
        text.encode("gbk").decode("gb2312")
    msg = parse_message(_text_message(text.encode("gbk"), "gb2312"))
    assert msg.text == text
    assert any("gb18030" in note for note in msg.notes)


def test_unknown_charset_label_falls_back_with_a_note() -> None:
    msg = parse_message(_text_message("grüß".encode(), "x-no-such-charset"))
    assert msg.text == "grüß"
    assert any("unknown charset" in note for note in msg.notes)


def test_undecodable_bytes_give_replacement_text_and_a_note() -> None:
    msg = parse_message(_text_message(b"\xff\xfe\xfa broken \x81\x8d", "utf-8"))
    assert "broken" in msg.text
    assert any("does not fit" in note for note in msg.notes)


def test_utf16_body_is_not_taken_for_ascii() -> None:
    text = "hello wörld"
    msg = parse_message(_text_message(text.encode("utf-16"), "utf-16", cte="binary"))
    assert msg.text == text


def test_8bit_parse_is_right_where_flanker_alone_is_wrong() -> None:
    raw = corpus_tools.text_message(eight_bit=True)
    msg = parse_message(raw)
    assert "café crème brûlée" in msg.text
    assert "cafÚ" not in msg.text


def test_decode_text_directly() -> None:
    notes: list[str] = []
    assert decode_text("café".encode("cp1252"), "iso-8859-1", "x", notes) == "café"
    assert decode_text("café".encode(), "iso-8859-1", "x", notes) == "café"
    assert notes == ["x: declared charset iso-8859-1 wrong, decoded as utf-8"]
    assert decode_text(b"plain", None, "x", notes) == "plain"
