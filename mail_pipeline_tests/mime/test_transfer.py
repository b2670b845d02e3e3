"""Tests of mail_pipeline.mime.transfer: base64 and quoted-printable, bad base64 leniently."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mail_pipeline.mime import transfer as transfer_module
from mail_pipeline.mime.transfer import (
    CHUNK_SIZE,
    Transfer,
    b64_lenient,
    decode_transfer,
    fix_b64_padding,
    undo_transfer,
)


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


# --- decoding in chunks gives what decoding the whole part gives ------------------------------


def _whole(data: bytes, cte: str | None, notes: list[str]) -> bytes:
    """The decoding of a whole part at once (the definition the chunks must match)."""
    name = cte.strip().strip('"').lower() if cte else ""
    if name == "base64":
        compact = data.translate(None, b" \t\r\n")
        try:
            return binascii.a2b_base64(compact, strict_mode=True)
        except binascii.Error:
            notes.append("p: invalid base64, decoded leniently")
            return b64_lenient(compact)
    if name == "quoted-printable":
        return binascii.a2b_qp(data)
    if name not in ("7bit", "8bit", "binary", ""):
        notes.append(f"p: unknown transfer encoding {name!r}, kept as is")
    return data


@st.composite
def _encoded(draw: st.DrawFn) -> bytes:
    """Base64 of random bytes with line breaks, sometimes damaged (stray characters, extra or
    missing padding, a cut tail)."""
    text = base64.encodebytes(draw(st.binary(max_size=200))).replace(b"\n", b"\r\n")
    data = bytearray(text)
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        pos = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "cut"]))
        if kind == "insert":
            data[pos:pos] = draw(st.sampled_from([b"=", b"==", b"*", b" ", b"\r\n", b"A", b"-"]))
        elif kind == "delete":
            del data[pos : pos + 1]
        else:
            del data[pos:]
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(_encoded(), st.integers(1, 9), st.integers(1, 9))
def test_base64_in_chunks_matches_the_whole(data: bytes, choose: int, size: int) -> None:
    expected_notes: list[str] = []
    expected = _whole(data, "base64", expected_notes)
    notes: list[str] = []
    with mock.patch.object(transfer_module, "CHUNK_SIZE", choose):
        transfer, decoded = undo_transfer(memoryview(data), "base64", "p", notes, b"".join)
    assert (decoded, notes) == (expected, expected_notes)
    assert b"".join(transfer.chunks(size)) == expected
    assert transfer.decoded() == expected


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"a",
                b"\xc3",
                b"=",
                b"=C3",
                b"=a9",
                b"=\r\n",
                b"=\n",
                b"\r\n",
                b"\n",
                b"\r",
                b" ",
                b"\t",
            ]
        ),
        max_size=60,
    ),
    st.integers(1, 9),
)
def test_quoted_printable_in_chunks_matches_the_whole(tokens: list[bytes], size: int) -> None:
    # escapes, soft breaks, bare CR/LF, trailing blanks and broken escapes, cut anywhere
    data = b"".join(tokens)
    expected = binascii.a2b_qp(data)
    assert b"".join(Transfer(memoryview(data), "quoted-printable").chunks(size)) == expected


@pytest.mark.parametrize(
    ("data", "cte"),
    [
        (b"caf=C3=A9=\r\nx\r\n", "quoted-printable"),
        (b"plain bytes\r\n" * 5, None),
        (b"plain bytes\r\n" * 5, "8bit"),
        (b"kept", "x-uuencode"),
        (b"aGVsbG8=", "BASE64"),
    ],
)
def test_other_encodings_in_chunks_match_the_whole(data: bytes, cte: str | None) -> None:
    expected_notes: list[str] = []
    expected = _whole(data, cte, expected_notes)
    notes: list[str] = []
    transfer, decoded = undo_transfer(memoryview(data), cte, "p", notes, b"".join)
    assert (decoded, notes) == (expected, expected_notes)
    assert b"".join(transfer.chunks(3)) == expected == transfer.decoded()
    assert decode_transfer(memoryview(data), cte, "p", []) == expected


@pytest.mark.parametrize("data", [b"aGVsbG8h====", b"AAAAAAAA=\r\n", b"QQ==\r\n"])
def test_padding_accepted_by_the_whole_is_accepted_in_chunks(data: bytes) -> None:
    expected = _whole(data, "base64", [])
    for size in range(1, len(data) + 1):
        chunks = Transfer(data, "base64").chunks(size)
        assert b"".join(chunks) == expected
    assert b"".join(Transfer(data, "base64-whole").chunks()) == expected


def test_a_big_part_is_decoded_a_chunk_at_a_time() -> None:
    content = bytes(range(256)) * 20_000  # 5 MB
    encoded = base64.encodebytes(content)
    transfer, _ = undo_transfer(encoded, "base64", "p", [], lambda chunks: None)
    sizes = [len(chunk) for chunk in transfer.chunks()]
    assert len(sizes) > 4 and max(sizes) <= CHUNK_SIZE
    assert b"".join(transfer.chunks()) == content


def test_consume_is_called_again_after_invalid_strict_base64() -> None:
    calls: list[bytes] = []

    def consume(chunks: Iterator[bytes]) -> int:
        data = b"".join(chunks)
        calls.append(data)
        return len(data)

    notes: list[str] = []
    transfer, size = undo_transfer(b"aGVs*bG8", "base64", "p", notes, consume)
    assert (transfer.mode, size, calls[-1]) == ("base64-lenient", 5, b"hello")
    assert notes == ["p: invalid base64, decoded leniently"]
