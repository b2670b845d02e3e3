"""Property tests: any byte sequence gives a ParsedMessage or a MessageParseError, quickly.

Inputs are arbitrary bytes and mutations of the corpus messages (flipped, inserted and deleted
bytes, truncation, duplicated boundary lines, spliced header lines). A MessageParseError whose
detail starts with "unexpected" is the parser's last-resort wrapper around a bug, so it fails
the test too. The fast tokenizer is also checked against flanker's own on the same inputs.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from flanker.mime.message import scanner as flanker_scanner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mail_pipeline.errors import MessageParseError
from mail_pipeline.mime import ParsedMessage, parse_message
from mail_pipeline.mime.flanker_adapter import tokenize as _tokenize

CORPUS = Path(__file__).parent.parent / "data" / "corpus"
SAMPLES = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml")) if p.stat().st_size > 0]
PER_EXAMPLE_SECONDS = 2.0

COMMON = settings(
    max_examples=300,
    deadline=PER_EXAMPLE_SECONDS * 1000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _check(raw: bytes) -> ParsedMessage | None:
    started = time.perf_counter()
    try:
        result = parse_message(raw)
    except MessageParseError as error:
        assert error.reason in {"empty", "not_a_message", "malformed_mime"}, error
        assert not error.detail.startswith("unexpected"), error
        return None
    finally:
        assert time.perf_counter() - started < PER_EXAMPLE_SECONDS
    assert isinstance(result, ParsedMessage)
    assert result.size == len(raw) and result.raw == raw
    assert isinstance(result.subject, str) and isinstance(result.text, str)
    assert all(isinstance(a, str) and "@" in a for a in result.to + result.cc + result.bcc)
    assert result.date is None or result.date.tzinfo is not None
    assert re.fullmatch(r"[0-9a-f]{64}", result.content_hash)
    for attachment in result.attachments:
        assert isinstance(attachment.content, bytes)
        assert "/" in attachment.content_type
    if result.message_id is not None:
        assert result.message_id and not any(c.isspace() for c in result.message_id)
    return result


def _token_view(tokens: list[object]) -> list[tuple[object, ...]]:
    view: list[tuple[object, ...]] = []
    for token in tokens:
        if isinstance(token, flanker_scanner.Boundary):
            view.append(("b", token.value, token.start, token.end, token.final))
        else:
            view.append(("c", str(token), repr(token)))
    return view


def _same_tokens(raw: bytes) -> None:
    text = raw.decode("latin-1")
    try:
        expected = _token_view(flanker_scanner.tokenize(text))
    except Exception as error:  # flanker's own tokenizer may raise; ours must raise too
        try:
            _tokenize(text)
        except Exception as ours:
            assert type(ours) is type(error)
            return
        raise AssertionError(f"flanker raised {error!r}, _tokenize did not") from error
    assert _token_view(_tokenize(text)) == expected


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "boundary", "header"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "boundary":
            lines = [m.group(0) for m in re.finditer(rb"(?m)^--[^\r\n]*\r?\n", bytes(data))]
            if lines:
                line = draw(st.sampled_from(lines))
                data[pos:pos] = b"\r\n" + line * draw(st.integers(1, 3))
        else:
            field = draw(
                st.sampled_from(
                    [
                        b"Content-Type: multipart/mixed\r\n",
                        b"Content-Type: multipart/mixed; boundary=\"\"\r\n",
                        b"Content-Transfer-Encoding: base64\r\n",
                        b"Content-Type: message/rfc822\r\n",
                        b"To: ,,;:<>\"\r\n",
                        b"Date: Mon, 99 Foo 99999 99:99:99 +9999\r\n",
                        b"Subject: =?x-unknown?B?////?= =?utf-8?Q?=ZZ?=\r\n",
                        b"Content-Disposition: attachment; filename*0*=bogus'%ZZ\r\n",
                    ]
                )
            )
            data[pos:pos] = field
    return bytes(data)


@COMMON
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(raw: bytes) -> None:
    _check(raw)


@COMMON
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_after_a_header(raw: bytes) -> None:
    # Past the "is it a message" gate, so the structure code sees the garbage.
    _check(b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + raw)


@COMMON
@given(mutated())
def test_mutated_corpus_messages(raw: bytes) -> None:
    _check(raw)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated(), st.sampled_from(SAMPLES)))
def test_fast_tokenizer_matches_flankers(raw: bytes) -> None:
    _same_tokens(raw)


def test_every_corpus_message_tokenizes_like_flanker() -> None:
    for raw in SAMPLES:
        _same_tokens(raw)
