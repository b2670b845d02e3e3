"""The IMAP connection layer against a real Dovecot (and the Dovecot test rig itself).

OAuth2 is tested against Dovecot's real ``oauth2`` passdb: Dovecot POSTs every XOAUTH2 token
to a loopback RFC 7662 introspection endpoint served by the test session
(``fixtures/oauth2_introspection.py``); no IMAP test double is involved.

The account's checks are in ``test_account.py``, the token command in ``test_oauth2.py``, the
errors of later commands in ``test_translate.py``.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mail_pipeline.errors import ConfigError, ImapAuthError, ImapConnectError, ImapTLSError
from mail_pipeline.intake.imap.account import ImapAccount, ImapSecurity
from mail_pipeline.intake.imap.connection import connect, imap_session
from mail_pipeline_tests.fixtures.dovecot import DovecotServer, MailUser
from mail_pipeline_tests.fixtures.servers import SilentServer
from mail_pipeline_tests.intake.imap.mailboxes import RAW, account_for, full_text

pytestmark = pytest.mark.dovecot


# --- the rig ---------------------------------------------------------------------------------


def test_rig_append_returns_uids_and_new_users_are_isolated(dovecot: DovecotServer) -> None:
    alice, bob = dovecot.new_user(), dovecot.new_user()
    uids = [dovecot.append(alice.username, RAW) for _ in range(3)]
    assert uids == sorted(uids) and len(set(uids)) == 3
    assert dovecot.uids(alice.username) == uids
    assert dovecot.uids(bob.username) == []


def test_rig_folder_recreate_changes_uidvalidity(dovecot: DovecotServer) -> None:
    user = dovecot.new_user()
    dovecot.create_folder(user.username, "Archive/2024")
    uid = dovecot.append(user.username, RAW, folder="Archive/2024")
    before = dovecot.uidvalidity(user.username, "Archive/2024")
    dovecot.delete_folder(user.username, "Archive/2024")
    dovecot.create_folder(user.username, "Archive/2024")
    assert dovecot.uidvalidity(user.username, "Archive/2024") != before
    assert dovecot.uids(user.username, "Archive/2024") == []
    assert uid == 1


def test_rig_append_flags_and_internaldate(dovecot: DovecotServer) -> None:
    import datetime as dt

    user = dovecot.new_user()
    when = dt.datetime(2024, 2, 29, 12, 30, tzinfo=dt.UTC)
    uid = dovecot.append(user.username, RAW, flags=["\\Seen", "\\Flagged"], internaldate=when)
    assert {"\\Seen", "\\Flagged"} <= dovecot.flags(user.username)[uid]
    account = account_for(dovecot, user)
    with imap_session(account) as client:
        client.select_folder("INBOX", readonly=True)
        date = client.fetch([uid], ["INTERNALDATE"])[uid][b"INTERNALDATE"]
    assert date.astimezone(dt.UTC) == when if date.tzinfo else date == when.replace(tzinfo=None)


def test_rig_body_peek_keeps_mail_unseen_and_rfc822_does_not(dovecot: DovecotServer) -> None:
    """The seed fetched with RFC822 on a read-write select, which marks mail as read."""
    user = dovecot.new_user()
    peeked, read = dovecot.append(user.username, RAW), dovecot.append(user.username, RAW)
    with imap_session(account_for(dovecot, user)) as client:
        client.select_folder("INBOX")  # read-write on purpose
        body = client.fetch([peeked], ["BODY.PEEK[]"])[peeked][b"BODY[]"]
        client.fetch([read], ["RFC822"])
    assert body == RAW
    flags = dovecot.flags(user.username)
    assert "\\Seen" not in flags[peeked]
    assert "\\Seen" in flags[read]


def test_rig_users_and_passwords_change_while_running(dovecot: DovecotServer) -> None:
    user = dovecot.new_user()
    with imap_session(account_for(dovecot, user)):
        pass
    dovecot.add_user(user.username, "changed-password")
    with pytest.raises(ImapAuthError):
        connect(account_for(dovecot, user))
    with imap_session(account_for(dovecot, user, password="changed-password")):
        pass


def test_rig_restart_keeps_ports_users_and_mail(private_dovecot: DovecotServer) -> None:
    server = private_dovecot
    user = server.new_user()
    uid = server.append(user.username, RAW)
    ports = (server.imap_port, server.imaps_port)
    started = time.monotonic()
    server.restart()
    assert time.monotonic() - started < 5
    assert (server.imap_port, server.imaps_port) == ports
    assert server.uids(user.username) == [uid]
    server.stop()
    assert not server.is_running
    with pytest.raises(ImapConnectError):
        connect(account_for(server, user))


# --- logging in ------------------------------------------------------------------------------


def test_imaps_login_with_test_ca(dovecot: DovecotServer) -> None:
    user = dovecot.new_user()
    with imap_session(account_for(dovecot, user)) as client:
        assert isinstance(client.socket(), ssl.SSLSocket)
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
    assert f"user={user.username}" in dovecot.log_text().replace("<", "").replace(">", "")


def test_imaplib_does_not_format_every_literal_for_a_silent_log(
    dovecot: DovecotServer,
) -> None:
    # imapclient sets imaplib's debug level 5: the repr of every fetched message, formatted
    # for a log line nobody sees (80 MB of text for a 25 MB message). Unless DEBUG is on.
    user = dovecot.new_user()
    logger = logging.getLogger("imapclient.imaplib")
    with imap_session(account_for(dovecot, user)) as client:
        assert client._imap.debug == 0
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with imap_session(account_for(dovecot, user)) as client:
            assert client._imap.debug == 5
    finally:
        logger.setLevel(level)


def test_starttls_login_with_test_ca(dovecot: DovecotServer) -> None:
    user = dovecot.new_user()
    account = account_for(dovecot, user, ImapSecurity.STARTTLS)
    with imap_session(account) as client:
        sock = client.socket()
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        assert sock.gettimeout() == account.read_timeout
        client.select_folder("INBOX", readonly=True)


def test_localhost_name_matches_the_certificate(dovecot: DovecotServer) -> None:
    user = dovecot.new_user()
    account = ImapAccount(
        "localhost",
        dovecot.imaps_port,
        user.username,
        password=user.password,
        ca_file=str(dovecot.ca_cert_path),
    )
    with imap_session(account) as client:
        client.noop()


def test_plain_login_only_when_configured(dovecot: DovecotServer) -> None:
    user = dovecot.new_user()
    with imap_session(account_for(dovecot, user, ImapSecurity.PLAIN)) as client:
        assert not isinstance(client.socket(), ssl.SSLSocket)
        client.noop()


def test_imap_session_logs_out_and_closes(dovecot: DovecotServer) -> None:
    user = dovecot.new_user()
    with imap_session(account_for(dovecot, user)) as client:
        pass
    assert client._imap.state == "LOGOUT"
    assert "Logged out" in dovecot.log_text()


def test_wrong_password_is_an_auth_error_without_the_password(dovecot: DovecotServer) -> None:
    user = dovecot.new_user()
    secret = "Wr0ng-Pa55word-that-must-not-leak"
    account = account_for(dovecot, user, password=secret)
    started = time.monotonic()
    with pytest.raises(ImapAuthError) as info:
        connect(account)
    assert time.monotonic() - started < 1.5  # auth_failure_delay is off in the rig
    assert not isinstance(info.value, ImapConnectError)  # not transient
    assert user.username in str(info.value)
    assert "AUTHENTICATIONFAILED" in str(info.value)
    assert secret not in full_text(info.value)
    assert secret not in repr(account)


def test_unknown_user_is_an_auth_error(dovecot: DovecotServer) -> None:
    user = MailUser("nobody-here", "whatever-password")
    for security in ImapSecurity:
        with pytest.raises(ImapAuthError):
            connect(account_for(dovecot, user, security))


def test_wrong_ca_is_refused(dovecot: DovecotServer) -> None:
    user = dovecot.new_user()
    for security in (ImapSecurity.SSL, ImapSecurity.STARTTLS):
        account = account_for(dovecot, user, security, ca_file=str(dovecot.wrong_ca_cert_path))
        with pytest.raises(ImapTLSError) as info:
            connect(account)
        assert "certificate" in str(info.value)
        assert user.password not in full_text(info.value)


def test_verification_is_on_by_default(dovecot: DovecotServer) -> None:
    user = dovecot.new_user()
    for security in (ImapSecurity.SSL, ImapSecurity.STARTTLS):
        with pytest.raises(ImapTLSError):
            connect(account_for(dovecot, user, security, ca_file=None))


def test_verify_tls_off_accepts_any_certificate(dovecot: DovecotServer) -> None:
    user = dovecot.new_user()
    account = account_for(dovecot, user, ca_file=None, verify_tls=False)
    with imap_session(account) as client:
        client.noop()


def test_tls_to_a_plain_port_is_a_tls_error(dovecot: DovecotServer) -> None:
    user = dovecot.new_user()
    account = ImapAccount(
        dovecot.host, dovecot.imap_port, user.username, password=user.password,
        ca_file=str(dovecot.ca_cert_path), connect_timeout=3,
    )  # fmt: skip
    with pytest.raises(ImapTLSError):
        connect(account)


def test_missing_ca_file_is_a_config_error(dovecot: DovecotServer, tmp_path: Path) -> None:
    user = dovecot.new_user()
    with pytest.raises(ConfigError, match="ca_file"):
        connect(account_for(dovecot, user, ca_file=str(tmp_path / "absent.pem")))


# --- connection failures ---------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_refused_port_is_a_connect_error() -> None:
    account = ImapAccount("127.0.0.1", _closed_port(), "u", password="p", connect_timeout=2)
    with pytest.raises(ImapConnectError) as info:
        connect(account)
    assert not isinstance(info.value, ImapTLSError)
    assert "refused" in str(info.value).lower()


def test_unresolvable_host_is_a_connect_error() -> None:
    account = ImapAccount("no-such-host.invalid", 993, "u", password="p", connect_timeout=2)
    with pytest.raises(ImapConnectError):
        connect(account)


def test_silent_server_times_out_as_a_connect_error(silent_server: SilentServer) -> None:
    for security in ImapSecurity:
        account = ImapAccount(
            "127.0.0.1",
            silent_server.port,
            "u",
            password="p",
            security=security,
            connect_timeout=0.3,
        )
        started = time.monotonic()
        with pytest.raises(ImapConnectError, match="timed out"):
            connect(account)
        assert time.monotonic() - started < 3


def _serve_without_starttls(conn: socket.socket) -> None:
    """Greet, answer CAPABILITY without STARTTLS, refuse anything else."""
    with conn, conn.makefile("rb") as lines:
        conn.sendall(b"* OK fake server ready\r\n")
        for line in lines:
            tag, _, command = line.decode().strip().partition(" ")
            if command.upper() == "CAPABILITY":
                conn.sendall(f"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n".encode())
            else:
                conn.sendall(f"{tag} BAD not here\r\n".encode())


@pytest.fixture
def no_starttls_server() -> Iterator[int]:
    """A fake IMAP server that does not offer STARTTLS (as a downgrading middlebox would)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_serve_without_starttls, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    thread.join(2)


def test_starttls_not_offered_is_a_tls_error(no_starttls_server: int) -> None:
    account = ImapAccount(
        "127.0.0.1", no_starttls_server, "u", password="secret-pw",
        security=ImapSecurity.STARTTLS, connect_timeout=2, read_timeout=2,
    )  # fmt: skip
    with pytest.raises(ImapTLSError, match="STARTTLS"):
        connect(account)

    # leaving the session after the drop raised nothing


def test_imap_session_never_masks_the_original_error(private_dovecot: DovecotServer) -> None:
    server = private_dovecot
    user = server.new_user()
    with (
        pytest.raises(ValueError, match="from the block"),
        imap_session(account_for(server, user)),
    ):
        server.stop()  # logout will fail
        raise ValueError("from the block")


# --- OAuth2 ----------------------------------------------------------------------------------


def test_oauth2_login_through_dovecot_oauth2_passdb(dovecot: DovecotServer) -> None:
    """XOAUTH2 against Dovecot's real oauth2 passdb and the loopback introspection server."""
    user = dovecot.new_user()
    dovecot.set_oauth2_token(user.username, "access-token-ok")
    before = dovecot.introspection.requests
    account = account_for(dovecot, user, oauth2_token="access-token-ok")
    assert account.uses_oauth2
    with imap_session(account) as client:
        client.select_folder("INBOX", readonly=True)
    assert dovecot.introspection.requests == before + 1
    assert "method=XOAUTH2" in dovecot.log_text()


def test_oauth2_bad_token_is_an_auth_error_without_the_token(dovecot: DovecotServer) -> None:
    user, other = dovecot.new_user(), dovecot.new_user()
    dovecot.set_oauth2_token(other.username, "token-of-someone-else")
    for token in ("not-a-valid-token-zzz", "token-of-someone-else"):
        with pytest.raises(ImapAuthError) as info:
            connect(account_for(dovecot, user, oauth2_token=token))
        assert token not in full_text(info.value)
    dovecot.set_oauth2_token(user.username, "revoked-token")
    dovecot.revoke_oauth2_token("revoked-token")
    with pytest.raises(ImapAuthError):
        connect(account_for(dovecot, user, oauth2_token="revoked-token"))


def test_oauth2_provider_down_is_transient(private_dovecot: DovecotServer) -> None:
    """Dovecot answers NO [UNAVAILABLE] when it cannot reach the introspection endpoint."""
    server = private_dovecot
    user = server.new_user()
    server.set_oauth2_token(user.username, "tok-while-down")
    server.introspection.stop()
    with pytest.raises(ImapConnectError, match="UNAVAILABLE") as info:
        connect(account_for(server, user, oauth2_token="tok-while-down"))
    assert not isinstance(info.value, ImapAuthError)
    assert "tok-while-down" not in full_text(info.value)


# --- configuration ---------------------------------------------------------------------------
