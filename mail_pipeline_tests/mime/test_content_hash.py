"""Tests of mail_pipeline.mime.content_hash: trace headers and line endings do not count,
everything else does."""

from __future__ import annotations

import hashlib
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

import mail_pipeline.mime.content_hash as content_hash_module
from mail_pipeline.mime import parse_message
from mail_pipeline.mime.content_hash import TRACE_HEADERS, content_hash
from mail_pipeline_tests.data.corpus_tools import load_case


def test_content_hash_ignores_trace_headers_and_line_endings() -> None:
    raw, _ = load_case("plain_crlf")
    lf, _ = load_case("plain_lf")
    traced = (
        b"Return-Path: <alice@example.org>\r\n"
        b"Received: from mx.example.org (mx.example.org [192.0.2.1])\r\n"
        b"\tby mail.example.com; Tue, 24 Nov 2026 10:00:01 +0000\r\n"
        b"Delivered-To: bob@example.com\r\nX-Original-To: bob@example.com\r\n" + raw
    )
    imap_style = raw + b"\r\n"  # an extra trailing line break is not a different message
    mbox_style = b"From alice@example.org Tue Nov 24 10:00:00 2026\nStatus: RO\nX-UID: 17\n" + lf
    hashes = {parse_message(m).content_hash for m in (raw, lf, traced, imap_style, mbox_style)}
    assert len(hashes) == 1


def test_content_hash_sees_real_differences() -> None:
    raw, _ = load_case("plain_crlf")
    base = parse_message(raw).content_hash
    assert parse_message(raw.replace(b"noon", b"one")).content_hash != base
    assert parse_message(raw.replace(b"Lunch on", b"Dinner on")).content_hash != base
    # a non-trace header counts
    assert parse_message(b"X-Spam-Score: 1\r\n" + raw).content_hash != base


def test_content_hash_is_sha256_of_the_normalised_message() -> None:
    raw = b"Received: x\r\nSubject: s\r\nFrom: a@b.org\r\n\r\nbody\r\n"
    expected = hashlib.sha256(b"Subject: s\nFrom: a@b.org\n\nbody\n").hexdigest()
    assert parse_message(raw).content_hash == expected


def test_content_hash_of_bytes_directly() -> None:
    raw = b"From x@y Mon\nReceived: r\n\tfolded\nSubject: s\r\n\r\nbody\r\n\r\n"
    body_start = raw.index(b"\r\n\r\n") + 4
    expected = hashlib.sha256(b"Subject: s\n\nbody\n").hexdigest()
    assert content_hash(raw, body_start) == expected


def _hash_at_once(raw: bytes, body_start: int) -> str:
    """The content hash with the body normalised in one piece (what the chunks must match)."""
    digest = hashlib.sha256()
    kept = []
    keep = True
    for line in raw[:body_start].splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if keep:
                kept.append(line)
            continue
        if line.startswith(b"From "):
            keep = False
            continue
        keep = line.split(b":", 1)[0].strip().lower().decode("latin-1") not in TRACE_HEADERS
        if keep:
            kept.append(line)

    def lf(data: bytes) -> bytes:
        return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

    digest.update(lf(b"".join(kept)))
    digest.update(lf(raw[body_start:]).rstrip(b"\n"))
    digest.update(b"\n")
    return digest.hexdigest()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b" ", b"xyz"]), max_size=40),
    st.integers(1, 7),
)
def test_the_body_hashed_in_chunks_matches_the_body_at_once(
    pieces: list[bytes], chunk: int
) -> None:
    raw = b"Received: r\r\nSubject: s\r\n\r\n" + b"".join(pieces)
    body_start = raw.index(b"\r\n\r\n") + 4
    with mock.patch.object(content_hash_module, "_CHUNK", chunk):
        assert content_hash(raw, body_start) == _hash_at_once(raw, body_start)
