"""What a mailbox fetch reports: the kind of a failure, whether it is transient, one line."""

from __future__ import annotations

import pytest

from mail_pipeline.errors import (
    ConfigError,
    ImapAuthError,
    ImapConnectError,
    ImapProtocolError,
    ImapTLSError,
    NotFoundError,
)
from mail_pipeline.intake.imap.results import ErrorKind, FolderResult, MailboxResult, error_kind_of
from mail_pipeline.storage.store import TaskCounters


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ImapTLSError("certificate"), ErrorKind.TLS),  # before CONNECT, its base class
        (ImapConnectError("refused"), ErrorKind.CONNECT),
        (ImapAuthError("refused"), ErrorKind.AUTH),
        (ImapProtocolError("NO"), ErrorKind.PROTOCOL),
        (ConfigError("no config"), ErrorKind.CONFIG),
        (NotFoundError("no user"), ErrorKind.CONFIG),
    ],
)
def test_error_kind_of(exc: Exception, kind: ErrorKind) -> None:
    assert error_kind_of(exc) is kind


def result(kind: ErrorKind = ErrorKind.NONE, error: str = "", too_large: int = 0) -> MailboxResult:
    folder = FolderResult("INBOX", 7, 3, 2, 1, 1 + too_large, 12, False, too_large)
    return MailboxResult(
        1,
        "alice",
        kind,
        error,
        (folder,),
        TaskCounters(fetched=3, saved=2, failed=1 + too_large, duplicate=1),
        0.5,
        (("INBOX", 11, "parse: not_a_message"),),
        too_large=too_large,
    )


def test_only_connect_failures_are_transient() -> None:
    assert result().ok and not result().transient
    assert result(ErrorKind.CONNECT, "timed out").transient
    for kind in (ErrorKind.AUTH, ErrorKind.TLS, ErrorKind.PROTOCOL, ErrorKind.CONFIG):
        failed = result(kind, "no")
        assert not failed.ok and not failed.transient


def test_summary_is_one_line_with_the_counters_and_the_error() -> None:
    assert result().summary() == (
        "alice: fetched 3, saved 2, duplicates 1, failed 1 in 1 folder(s), 0.50 s"
    )
    assert result(too_large=2).summary() == (
        "alice: fetched 3, saved 2, duplicates 1, failed 3 (2 too large, left on the server) "
        "in 1 folder(s), 0.50 s"
    )
    assert result(ErrorKind.AUTH, "refused").summary().endswith("; auth error: refused")
