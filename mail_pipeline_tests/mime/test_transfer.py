"""Tests of mail_pipeline.mime.transfer: base64 and quoted-printable, bad base64 leniently."""

from __future__ import annotations

from mail_pipeline.mime.transfer import b64_lenient, decode_transfer, fix_b64_padding


def test_decode_transfer() -> None:
    notes: list[str] = []
    assert decode_transfer(b"aGVs\r\nbG8=\r\n", "Base64", "p", notes) == b"hello"
    assert decode_transfer(b"caf=C3=A9=\r\nx", "quoted-printable", "p", notes) == "caféx".encode()
    assert decode_transfer(b"as is", "8bit", "p", notes) == b"as is"
    assert decode_transfer(b"as is", None, "p", notes) == b"as is"
    assert notes == []


def test_bad_base64_and_unknown_encodings_are_noted() -> None:
    notes: list[str] = []
    assert decode_transfer(b"aGVs*bG8", "base64", "p", notes) == b"hello"
    assert decode_transfer(b"x", "x-uuencode", "p", notes) == b"x"
    assert notes == [
        "p: invalid base64, decoded leniently",
        "p: unknown transfer encoding 'x-uuencode', kept as is",
    ]


def test_lenient_base64_helpers() -> None:
    assert fix_b64_padding(b"aGVsbG8") == b"aGVsbG8="
    assert fix_b64_padding(b"aGVsb") == b"aGVs"  # one dangling character is cut
    assert b64_lenient(b"a G V s b G 8 ! ") == b"hello"
