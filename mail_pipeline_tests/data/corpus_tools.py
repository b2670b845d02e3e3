"""Deterministic generators for test messages too large to commit (and for benchmarks), and
the loader of the hand-written corpus."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

_LINE = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, cafe creme brulee {n:05d}.\n"
_LINE_8BIT = "Lorem ipsum dolor sit amet, consectetur adipiscing, café crème brûlée {n:05d}.\n"


def deterministic_bytes(size: int, seed: bytes = b"mail_pipeline") -> bytes:
    """Return ``size`` pseudo-random bytes, the same on every run (SHA-256 in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


def headers(subject: str = "benchmark", crlf: bool = True) -> str:
    """Return a typical top-level header block (without the blank line)."""
    text = (
        "Received: from mx1.example.org (mx1.example.org [192.0.2.1])\n"
        "\tby mail.example.com with ESMTPS id 4A1B2C3D; Tue, 24 Nov 2026 10:00:00 +0000\n"
        "Received: from laptop (unknown [198.51.100.7]) by mx1.example.org;\n"
        "\tTue, 24 Nov 2026 09:59:58 +0000\n"
        "From: Alice Example <alice@example.org>\n"
        "To: bob@example.com, Carol <carol@example.com>\n"
        'Cc: "Dave, the reviewer" <dave@example.net>\n'
        f"Subject: {subject}\n"
        "Date: Tue, 24 Nov 2026 10:59:58 +0100\n"
        "Message-ID: <20261124095958.4711@laptop.example.org>\n"
        "MIME-Version: 1.0\n"
    )
    return text.replace("\n", "\r\n") if crlf else text


def text_message(size: int = 20_000, eight_bit: bool = False, crlf: bool = True) -> bytes:
    """Return a single-part text/plain message of about ``size`` bytes.

    ``eight_bit`` makes it an iso-8859-1 8bit body (café crème), else plain ASCII.
    """
    line = _LINE_8BIT if eight_bit else _LINE
    body = "".join(line.format(n=i) for i in range(size // len(line) + 1))
    head = headers(crlf=False) + (
        "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\n"
    )
    text = head + body
    if crlf:
        text = text.replace("\n", "\r\n")
    return text.encode("iso-8859-1")


def alternative_message(size: int = 20_000, eight_bit: bool = False) -> bytes:
    """Return a multipart/alternative (text + HTML) message of about ``size`` bytes."""
    line = _LINE_8BIT if eight_bit else _LINE
    half = size // 2
    plain = "".join(line.format(n=i) for i in range(half // len(line) + 1))
    html = "".join("<p>" + line.format(n=i) + "</p>" for i in range(half // (len(line) + 7)))
    text = (
        headers(crlf=False)
        + 'Content-Type: multipart/alternative; boundary="=_alt_boundary"\n\n'
        + "--=_alt_boundary\nContent-Type: text/plain; charset=iso-8859-1\n"
        + "Content-Transfer-Encoding: 8bit\n\n"
        + plain
        + "\n--=_alt_boundary\nContent-Type: text/html; charset=iso-8859-1\n"
        + "Content-Transfer-Encoding: 8bit\n\n"
        + html
        + "\n--=_alt_boundary--\n"
    )
    return text.replace("\n", "\r\n").encode("iso-8859-1")


def big_attachment_message(size: int = 10 * 1024 * 1024) -> tuple[bytes, bytes]:
    """Return (message, attachment content): a text body plus a ``size``-byte base64 file."""
    content = deterministic_bytes(size)
    encoded = base64.encodebytes(content).decode("ascii").replace("\n", "\r\n")
    text = (
        headers(subject="big attachment")
        + 'Content-Type: multipart/mixed; boundary="big-b"\r\n\r\n'
        + "--big-b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nSee attached.\r\n"
        + '--big-b\r\nContent-Type: application/octet-stream; name="blob.bin"\r\n'
        + 'Content-Disposition: attachment; filename="blob.bin"\r\n'
        + "Content-Transfer-Encoding: base64\r\n\r\n"
        + encoded
        + "--big-b--\r\n"
    )
    return text.encode("ascii"), content


def nested_message(depth: int) -> bytes:
    """Return a message of ``depth`` nested multipart/mixed levels around one text part."""
    parts = [headers(subject=f"nested {depth}")]
    for level in range(depth):
        parts.append(f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n--b{level}\r\n')
    parts.append("Content-Type: text/plain\r\n\r\ninnermost\r\n")
    for level in reversed(range(depth)):
        parts.append(f"--b{level}--\r\n")
    return "".join(parts).encode("ascii")


#: The hand-written corpus: ``NAME.eml`` with ``NAME.expected.json``.
CORPUS = Path(__file__).parent / "corpus"


def load_case(name: str) -> tuple[bytes, dict[str, Any]]:
    """Return the raw bytes and the expected values of corpus case ``name``."""
    raw = (CORPUS / f"{name}.eml").read_bytes()
    expected = json.loads((CORPUS / f"{name}.expected.json").read_text(encoding="utf-8"))
    return raw, expected
