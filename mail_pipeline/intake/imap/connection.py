"""Connect and log in to an IMAP server, with typed errors.

This is the connection layer under the mailbox fetcher. It knows nothing about Dagster.

- :func:`connect` opens the connection to an :class:`~mail_pipeline.intake.imap.account.ImapAccount`
  (IMAPS, STARTTLS or, only when configured, plain), verifies the server certificate and host
  name by default, logs in with a password or with OAuth2 (XOAUTH2 or OAUTHBEARER as the
  account's ``sasl_mechanism`` says, token from :mod:`mail_pipeline.intake.imap.oauth2`) and
  returns a logged-in :class:`imapclient.IMAPClient`.
- :func:`imap_session` does the same as a context manager that always logs out and closes.

Failures come as the typed errors of :mod:`mail_pipeline.intake.imap.translate` (every one an
:class:`~mail_pipeline.errors.ImapError`, or a :class:`~mail_pipeline.errors.ConfigError` for an
unusable ``ca_file`` or token command); later commands are wrapped in
:func:`~mail_pipeline.intake.imap.translate.translate_imap_errors` by the caller. No message
ever contains the password or the OAuth2 token.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import imapclient

from mail_pipeline.errors import ConfigError, ImapAuthError
from mail_pipeline.intake.imap.account import ImapAccount, ImapSecurity, SaslMechanism
from mail_pipeline.intake.imap.oauth2 import oauth2_credential
from mail_pipeline.intake.imap.translate import translating

__all__ = ["build_ssl_context", "connect", "imap_session"]

log = logging.getLogger(__name__)


def build_ssl_context(account: ImapAccount) -> ssl.SSLContext:
    """Return the TLS client context for ``account``.

    With ``verify_tls`` (the default) the context checks the certificate chain against the
    system CAs plus ``ca_file`` and checks the host name; TLS 1.2 is the minimum. With
    ``verify_tls=False`` nothing is checked (only for servers you trust by other means).

    Contexts are cached per (verify_tls, ca_file, its modification time): loading the system CA
    bundle costs ~40 ms, once per mailbox per tick without the cache; a changed ``ca_file``
    gets a new context.

    Raises:
        ConfigError: ``ca_file`` does not exist or holds no usable certificate.
    """
    if not account.verify_tls:
        return _ssl_context(False, None, 0)
    if account.ca_file is None:
        return _ssl_context(True, None, 0)
    try:
        mtime = os.stat(account.ca_file).st_mtime_ns
    except OSError:
        mtime = -1
    if mtime < 0 or not os.path.isfile(account.ca_file):
        raise ConfigError(f"ca_file {account.ca_file!r} does not exist or is not a file")
    return _ssl_context(True, account.ca_file, mtime)


@functools.lru_cache(maxsize=64)
def _ssl_context(verify: bool, ca_file: str | None, _mtime_ns: int) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"ca_file {ca_file!r} cannot be loaded: {exc}") from None
    return context


# --- connecting ------------------------------------------------------------------------------


def _close_quietly(client: imapclient.IMAPClient, *, logout: bool) -> None:
    """Log out (if asked) and close the socket; never raises."""
    if logout:
        try:
            client.logout()
            return
        except Exception as exc:  # the connection may already be gone
            log.debug("IMAP logout failed (%s); closing the socket", type(exc).__name__)
    try:
        client.shutdown()
    except Exception as exc:
        log.debug("IMAP socket shutdown failed: %s", type(exc).__name__)


def connect(account: ImapAccount) -> imapclient.IMAPClient:
    """Open a connection to ``account``'s server and log in.

    IMAPS or STARTTLS verify the certificate and host name unless ``verify_tls`` is off; the
    connection and TLS handshake are limited by ``connect_timeout``, every later socket read by
    ``read_timeout``. A password logs in with LOGIN, OAuth2 with AUTHENTICATE XOAUTH2 (or
    OAUTHBEARER). An access token from an OAuth2 client's cache that the server refuses is
    forgotten and the login is tried once more with a refreshed one.

    Returns:
        A connected, logged-in :class:`imapclient.IMAPClient` (``use_uid`` is on: commands take
        and return UIDs). The caller must log out; prefer :func:`imap_session`.

    Raises:
        ConfigError: ``ca_file`` is unusable, or the OAuth2 token command cannot be run.
        OAuth2NotAuthorizedError, OAuth2GrantError: (ImapAuthError) the OAuth2 client has no
            grant, or the token endpoint refused it: the message names
            ``mail-pipeline imap authorize``.
        OAuth2EndpointError: (ImapConnectError) the token endpoint stayed unusable.
        ImapTLSError: TLS handshake or certificate verification failed, or STARTTLS is not
            offered.
        ImapConnectError: the server is unreachable, refused the connection, timed out or
            dropped it, or answered the login with ``[UNAVAILABLE]``.
        ImapAuthError: the server refused the credentials (or the token command failed).
        ImapProtocolError: the server answered something unusable before login finished.
    """
    context = build_ssl_context(account) if account.security is not ImapSecurity.PLAIN else None
    token, stale = oauth2_credential(account) if account.uses_oauth2 else (None, False)
    secrets = [account.password, token, account.oauth2_client_secret]
    where = f"IMAP {account.host}:{account.port}"
    timeout = imapclient.SocketTimeout(connect=account.connect_timeout, read=account.read_timeout)

    with translating(f"connecting to {where}", "connect", secrets):
        client = imapclient.IMAPClient(
            account.host,
            port=account.port,
            ssl=account.security is ImapSecurity.SSL,
            ssl_context=context,
            timeout=timeout,
        )
    # imapclient sets imaplib's debug level to 5, at which imaplib formats the repr of every
    # literal it receives (a 25 MB message: 80 MB of text, and its CPU time) into a log line
    # that is dropped unless the "imapclient.imaplib" logger shows DEBUG.
    if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
        client._imap.debug = 0

    try:
        if account.security is ImapSecurity.STARTTLS:
            with translating(f"STARTTLS with {where}", "connect", secrets):
                client.starttls(context)
            client.socket().settimeout(account.read_timeout)
        action = f"login to {where} as {account.username!r}"
        if token is None:
            assert account.password is not None
            with translating(action, "command", secrets):
                client.login(account.username, account.password)
        else:
            try:
                with translating(action, "command", secrets):
                    _oauth2_login(client, account, token)
            except ImapAuthError:
                if not stale or account.token_source is None:
                    raise
                account.token_source.reject(token)
                token, _ = oauth2_credential(account)
                secrets.append(token)
                with translating(action, "command", secrets):
                    _oauth2_login(client, account, token)
    except BaseException:
        _close_quietly(client, logout=False)
        raise
    log.debug("logged in to %s", account.endpoint)
    return client


def _oauth2_login(client: imapclient.IMAPClient, account: ImapAccount, token: str) -> None:
    """AUTHENTICATE with ``token`` by the account's SASL mechanism."""
    if account.sasl_mechanism is SaslMechanism.OAUTHBEARER:
        client.oauthbearer_login(account.username, token)
    else:
        client.oauth2_login(account.username, token)


@contextmanager
def imap_session(account: ImapAccount) -> Iterator[imapclient.IMAPClient]:
    """Connect and log in (see :func:`connect`), yield the client, then log out and close.

    Logging out and closing never raise and never replace an exception raised in the block.
    Exceptions raised by IMAP commands inside the block are *not* translated: wrap them in
    :func:`~mail_pipeline.intake.imap.translate.translate_imap_errors`.

    Yields:
        A logged-in :class:`imapclient.IMAPClient`.

    Raises:
        The errors of :func:`connect`, and whatever the block raises.
    """
    client = connect(account)
    try:
        yield client
    finally:
        _close_quietly(client, logout=True)
