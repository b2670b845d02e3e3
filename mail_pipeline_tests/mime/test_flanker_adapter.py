"""Tests of mail_pipeline.mime.flanker_adapter: the fast tokenizer gives flanker's tokens, the
spans locate the parts, and the private flanker names it relies on still exist and behave.

The last group fails loudly when a flanker upgrade renames or changes what the adapter uses.
"""

from __future__ import annotations

import io
import re
from unittest import mock

import pytest
from flanker.mime.message import scanner as flanker_scanner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mail_pipeline.mime import flanker_adapter
from mail_pipeline.mime.flanker_adapter import parse_addr_spec, scan, tokenize
from mail_pipeline_tests.mime.mutations import SAMPLES, mutated


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
            tokenize(text)
        except Exception as ours:
            assert type(ours) is type(error)
            return
        raise AssertionError(f"flanker raised {error!r}, _tokenize did not") from error
    assert _token_view(tokenize(text)) == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated(), st.sampled_from(SAMPLES)))
def test_fast_tokenizer_matches_flankers(raw: bytes) -> None:
    _same_tokens(raw)


def test_every_corpus_message_tokenizes_like_flanker() -> None:
    for raw in SAMPLES:
        _same_tokens(raw)


def test_scan_gives_the_offsets_of_every_part() -> None:
    s = (
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\none\r\n"
        "--b\r\nContent-Type: image/png\r\n\r\ntwo\r\n"
        "--b--\r\n"
    )
    root = scan(s, max_depth=5)
    assert root.content_type == "multipart/mixed" and root.multipart
    assert (root.start, root.end) == (0, len(s))
    first, second = root.children
    assert s[first.start : first.end] == "Content-Type: text/plain\r\n\r\none"
    assert s[second.start : second.end] == "Content-Type: image/png\r\n\r\ntwo"
    assert (first.content_type, first.multipart, first.children) == ("text/plain", False, ())
    assert scan(s, max_depth=0).children == ()  # not descended, still marked multipart
    assert scan(s, max_depth=0).multipart


def test_parse_addr_spec() -> None:
    assert parse_addr_spec('"Doe, J." <j.doe@example.org>') == "j.doe@example.org"
    assert parse_addr_spec("not an address") is None
    assert parse_addr_spec("http://example.org/") is None  # flanker's URL type
    assert parse_addr_spec("a" * 2000 + "@example.org") is None


# --- the private flanker names the adapter relies on ------------------------------------------


def test_private_tokenizer_names_exist_and_behave_as_relied_on() -> None:
    regex = flanker_scanner._RE_TOKENIZER
    assert {"ctype", "boundary", "empty"} <= set(regex.groupindex)
    assert regex.flags & re.MULTILINE and regex.flags & re.IGNORECASE
    s = "x\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
    match = regex.match(s, 3)
    assert match is not None and match.group("boundary") == "--b\r"
    # _grab_newline(position, string, direction): the boundary's start and end with newlines
    assert flanker_scanner._grab_newline(match.start(), s, -1) == 1
    assert flanker_scanner._grab_newline(match.end(), s, 1) == match.end()  # the "\n"
    assert isinstance(flanker_scanner._EMPTY_LINE, str)
    # _filter_false_tokens drops a boundary that no preceding Content-Type declared
    stray = flanker_scanner.Boundary("--b", 3, 7, False)
    assert list(flanker_scanner._filter_false_tokens([stray])) == []
    assert flanker_adapter._RE_TOKENIZER is regex


def test_private_part_container_holds_the_offsets() -> None:
    s = "Content-Type: text/plain\r\n\r\nbody\r\n"
    part = flanker_scanner.scan(s)
    container = part._container
    assert (container.start, container.end) == (0, len(s) - 1)  # end is inclusive


# --- the scanner reads the message in place, not from flanker's StringIO copy ----------------


def _scan_both(raw: bytes) -> None:
    text = raw.decode("latin-1")
    try:
        with mock.patch.object(flanker_adapter, "_Tokens", flanker_scanner.TokensIterator):
            expected: object = scan(text, 8)
    except Exception as error:  # flanker's own iterator raises: ours must raise the same
        expected = type(error)
    try:
        found: object = scan(text, 8)
    except Exception as error:
        found = type(error)
    assert found == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated(), st.sampled_from(SAMPLES)))
def test_scan_gives_the_spans_flankers_own_iterator_gives(raw: bytes) -> None:
    _scan_both(raw)


def test_every_corpus_message_scans_like_with_flankers_iterator() -> None:
    for raw in SAMPLES:
        _scan_both(raw)
    forwarded = next(raw for raw in SAMPLES if b"message/rfc822" in raw)
    assert scan(forwarded.decode("latin-1"), 8).children  # the enclosed message is found


@pytest.mark.parametrize("text", ["a\r\nb\n\nc", "", "no newline", "\n\n", "x\ny\n"])
def test_line_stream_reads_lines_as_stringio_does(text: str) -> None:
    for start in range(len(text) + 1):
        ours, theirs = flanker_adapter._LineStream(text), io.StringIO(text)
        ours.seek(start)
        theirs.seek(start)
        got = [(line, ours.tell()) for line in ours]
        want = [(line, theirs.tell()) for line in theirs]
        assert got == want


def test_private_tokens_iterator_attributes_are_the_ones_set() -> None:
    iterator = flanker_scanner.TokensIterator([], "s")
    assert set(vars(iterator)) == set(vars(flanker_adapter._Tokens([], "s")))
