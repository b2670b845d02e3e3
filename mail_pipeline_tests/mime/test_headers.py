"""Tests of mail_pipeline.mime.headers: RFC 2047 encoded words and RFC 2231 parameters."""

from __future__ import annotations

import pytest

from mail_pipeline.mime.headers import decode_words, parse_params


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("=?utf-8?q?caf=C3=A9?=", "café"),
        ("=?UTF-8?B?Y2Fmw6k=?=", "café"),
        ("=?utf-8?b?Y2Fmw6k?=", "café"),  # missing padding
        ("a =?utf-8?q?b?= c", "a b c"),
        ("=?utf-8?q?one?= =?utf-8?q?_two?=", "one two"),  # white space between words dropped
        ("=?utf-8?b?5pel?= =?utf-8?b?5pys?=", "日本"),
        ("=?utf-8?b?5g==?= =?utf-8?q?=97=A5?=", "日"),  # one character split across two words
        ("=?utf-8*en?q?hi?=", "hi"),  # RFC 2231 language suffix
        ("no words", "no words"),
    ],
)
def test_decode_words(value: str, text: str) -> None:
    notes: list[str] = []
    assert decode_words(value, None, "subject", notes) == text
    assert notes == []


def test_raw_8bit_header_uses_utf8_then_the_hint() -> None:
    notes: list[str] = []
    assert decode_words("café".encode().decode("latin-1"), None, "s", notes) == "café"
    assert decode_words("café".encode("cp1252").decode("latin-1"), "cp1252", "s", notes) == "café"
    assert decode_words("=?utf-8?q?ok?=", None, "s", notes, raw=False) == "ok"
    assert notes == []


def test_unknown_charset_in_a_word_is_noted_not_raised() -> None:
    notes: list[str] = []
    assert decode_words("=?x-unknown?q?abc?=", None, "subject", notes) == "abc"
    assert decode_words("=?x-unknown?B?/w==?=", None, "subject", notes)
    assert any("unknown charset" in note for note in notes)


def test_parse_params_simple_quoted_and_rfc2047() -> None:
    notes: list[str] = []
    main, params = parse_params(
        'Text/Plain; Charset="utf-8"; name="a;b\\"c.txt"; x=1; x=2; title="=?utf-8?q?caf=C3=A9?="',
        None,
        "content-type",
        notes,
    )
    assert main == "text/plain"
    assert params == {"charset": "utf-8", "name": 'a;b"c.txt', "x": "1", "title": "café"}


def test_parse_params_rfc2231_extended_and_continued() -> None:
    notes: list[str] = []
    _main, params = parse_params(
        "attachment; filename*0*=utf-8''%E6%97%A5; filename*1*=%E6%9C%AC; "
        "filename*2=.txt; a*=iso-8859-1'en'caf%E9",
        None,
        "content-disposition",
        notes,
    )
    assert params == {"filename": "日本.txt", "a": "café"}
    assert notes == []


def test_parse_params_never_raises_on_garbage() -> None:
    notes: list[str] = []
    main, params = parse_params("attachment; filename*0*=bogus'%ZZ; =; ;;\"", None, "cd", notes)
    assert main == "attachment"
    assert "filename" in params


def test_where_the_stdlib_decoders_fail_these_do_not() -> None:
    # email.header.decode_header raises on the broken B word and cannot give back "C:\users";
    # email.utils.decode_params raises TypeError on name*= with name*0= and misses file-name*0*.
    notes: list[str] = []
    assert decode_words("=?utf-8?b?abcde?= in C:\\users", None, "s", notes).endswith(
        " in C:\\users"
    )
    _main, params = parse_params(
        "attachment; filename*=utf-8''a; filename*0=b; file-name*0*=utf-8''%C3%A9",
        None,
        "cd",
        notes,
    )
    assert params == {"filename": "ab", "file-name": "é"}
