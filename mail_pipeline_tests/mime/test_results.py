"""Tests of mail_pipeline.mime.results: the result types are frozen and keep bytes out of repr."""

from __future__ import annotations

import hashlib

import pytest

from mail_pipeline.mime import parse_message
from mail_pipeline_tests.data.corpus_tools import big_attachment_message, load_case


def test_results_are_frozen() -> None:
    raw, _ = load_case("plain_crlf")
    msg = parse_message(raw)
    with pytest.raises(AttributeError):
        msg.subject = "changed"  # type: ignore[misc]
    assert "raw" not in repr(msg)


def test_an_attachment_is_decoded_on_demand_in_chunks() -> None:
    raw, content = big_attachment_message(3 * 1024 * 1024)
    msg = parse_message(raw)
    (attachment,) = msg.attachments
    assert attachment.size == len(content)
    assert attachment.sha256 == hashlib.sha256(content).hexdigest()
    chunks = list(attachment.chunks())
    assert len(chunks) > 1 and b"".join(chunks) == content
    assert attachment.content == content
    assert "source=" not in repr(attachment) and "content=" not in repr(attachment)
    # the encoded part is a view into the message's bytes, not a copy of them
    assert isinstance(attachment.source.data, memoryview)
    assert attachment.source.data.obj is msg.raw


def test_attachments_with_equal_contents_are_equal() -> None:
    raw, _content = big_attachment_message(1000)
    first = parse_message(raw).attachments[0]
    again = parse_message(raw.replace(b"See attached.", b"See attached!")).attachments[0]
    assert first == again
    other = parse_message(big_attachment_message(1001)[0]).attachments[0]
    assert first != other and first.sha256 != other.sha256
