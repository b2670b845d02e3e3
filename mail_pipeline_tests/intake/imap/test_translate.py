"""Library exceptions of later IMAP commands become typed errors (against a real Dovecot)."""

from __future__ import annotations

import pytest

from mail_pipeline.errors import (
    ImapAuthError,
    ImapConnectError,
    ImapError,
    ImapProtocolError,
    ImapTLSError,
)
from mail_pipeline.intake.imap.connection import imap_session
from mail_pipeline.intake.imap.translate import translate_imap_errors
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.intake.imap.mailboxes import RAW, account_for

pytestmark = pytest.mark.dovecot


def test_server_stopped_mid_session_is_a_connect_error(private_dovecot: DovecotServer) -> None:
    server = private_dovecot
    user = server.new_user()
    server.append(user.username, RAW)
    with imap_session(account_for(server, user)) as client:
        with translate_imap_errors("select INBOX"):
            client.select_folder("INBOX", readonly=True)
        server.stop()
        with pytest.raises(ImapConnectError) as info, translate_imap_errors("fetch"):
            client.fetch("1:*", ["BODY.PEEK[]"])
        assert str(info.value).startswith("fetch: ")
        assert info.value.__cause__ is not None


def test_translate_imap_errors_maps_no_answers_and_passes_other_errors(
    dovecot: DovecotServer,
) -> None:
    user = dovecot.new_user()
    with imap_session(account_for(dovecot, user)) as client:
        with (
            pytest.raises(ImapProtocolError, match="select Nope"),
            translate_imap_errors("select Nope"),
        ):
            client.select_folder("Nope")
        with pytest.raises(KeyError), translate_imap_errors():
            raise KeyError("a bug stays a bug")
        with pytest.raises(ImapAuthError), translate_imap_errors():
            raise ImapAuthError("already typed")
        client.noop()  # the session is still usable


def test_every_failure_is_an_imap_error() -> None:
    for cls in (ImapAuthError, ImapConnectError, ImapTLSError, ImapProtocolError):
        assert issubclass(cls, ImapError)
