"""Tests of mail_pipeline.mime.results: the result types are frozen and keep bytes out of repr."""

from __future__ import annotations

import pytest

from mail_pipeline.mime import parse_message
from mail_pipeline_tests.data.corpus_tools import load_case


def test_results_are_frozen() -> None:
    raw, _ = load_case("plain_crlf")
    msg = parse_message(raw)
    with pytest.raises(AttributeError):
        msg.subject = "changed"  # type: ignore[misc]
    assert "raw" not in repr(msg)
