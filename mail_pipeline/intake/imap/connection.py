"""Connect and log in to an IMAP server, with typed errors.

This is the connection layer under the mailbox fetcher. It knows nothing about Dagster.

- :class:`ImapAccount` holds one mailbox's connection settings and checks them when it is built
  (:class:`~mail_pipeline.errors.ConfigError` on anything missing or out of range).
- :func:`connect` opens the connection (IMAPS, STARTTLS or, only when configured, plain), verifies
  the server certificate and host name by default, logs in with a password or with OAuth2
  (XOAUTH2) and returns a logged-in :class:`imapclient.IMAPClient`.
- :func:`imap_session` does the same as a context manager that always logs out and closes.
- :func:`translate_imap_errors` turns the exceptions of ``socket``/``ssl``/``imaplib``/
  ``imapclient`` raised by *later* commands into the typed errors of
  :mod:`mail_pipeline.errors`. The fetcher wraps its IMAP commands in it::

      with imap_session(account) as client:
          with translate_imap_errors("select INBOX"):
              client.select_folder("INBOX", readonly=True)

Error mapping (everything is a :class:`~mail_pipeline.errors.ImapError`):

========================================================  ==================================
cause                                                     raised
========================================================  ==================================
LOGIN / AUTHENTICATE answered NO or BAD                   :class:`ImapAuthError`
login answered NO ``[UNAVAILABLE]`` (server cannot        :class:`ImapConnectError`
check credentials right now: transient)
certificate not trusted, wrong host name, handshake       :class:`ImapTLSError`
failure, no STARTTLS offered when STARTTLS is configured
refused, unreachable, DNS failure, timeout, connection    :class:`ImapConnectError`
dropped (``OSError``, ``imaplib.IMAP4.abort``, ``BYE``),
also during later commands
any other ``imaplib.IMAP4.error`` (NO/BAD to a command,   :class:`ImapProtocolError`
unparseable response, missing capability)
OAuth2 token command missing or unparseable               :class:`ConfigError`
OAuth2 token command failed or printed no token           :class:`ImapAuthError`
OAuth2 token command timed out                            :class:`ImapConnectError`
========================================================  ==================================

:class:`ImapTLSError` is a subclass of :class:`ImapConnectError`. No message ever contains the
password or the OAuth2 token.
"""

from __future__ import annotations

import functools
import imaplib
import logging
import math
import os
import shlex
import socket
import ssl
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import imapclient
from imapclient.exceptions import CapabilityError, LoginError

from mail_pipeline.errors import (
    ConfigError,
    ImapAuthError,
    ImapConnectError,
    ImapError,
    ImapProtocolError,
    ImapTLSError,
    MailPipelineError,
)

__all__ = [
    "OAUTH2_TOKEN_COMMAND_TIMEOUT",
    "ImapAccount",
    "ImapSecurity",
    "build_ssl_context",
    "connect",
    "imap_session",
    "resolve_oauth2_token",
    "translate_imap_errors",
]

log = logging.getLogger(__name__)

#: Seconds an ``oauth2_token_command`` may run before it is killed.
OAUTH2_TOKEN_COMMAND_TIMEOUT = 30.0

_REDACTED = "***"


class ImapSecurity(StrEnum):
    """How the connection is protected."""

    SSL = "ssl"  #: TLS from the first byte (IMAPS, usually port 993)
    STARTTLS = "starttls"  #: plain connect, then STARTTLS before login (usually port 143)
    PLAIN = "plain"  #: no TLS at all: only when configured on purpose (loopback, tests)


@dataclass(frozen=True)
class ImapAccount:
    """The connection settings of one IMAP mailbox.

    Exactly one kind of credential must be given: ``password``, or OAuth2 as either
    ``oauth2_token`` (an access token) or ``oauth2_token_command`` (a command whose standard
    output is an access token; split with :func:`shlex.split`, run without a shell).

    ``ca_file`` adds a CA bundle to the system's trusted CAs (for servers with a private CA);
    ``verify_tls=False`` turns certificate and host name checks off entirely.

    Raises:
        ConfigError: on an empty host or username, a port outside 1..65535, an unknown
            ``security``, no credential or more than one kind, an empty or malformed token,
            an empty ``ca_file`` or a timeout that is not a positive number.
    """

    host: str
    port: int
    username: str
    security: ImapSecurity = ImapSecurity.SSL
    password: str | None = field(default=None, repr=False)
    oauth2_token: str | None = field(default=None, repr=False)
    oauth2_token_command: str | None = None
    verify_tls: bool = True
    ca_file: str | None = None
    connect_timeout: float = 15.0
    read_timeout: float = 60.0

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise ConfigError("IMAP host must be a non-empty string")
        if self.host != self.host.strip():
            raise ConfigError(f"IMAP host {self.host!r} has surrounding whitespace")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ConfigError(f"IMAP port must be an integer, got {type(self.port).__name__}")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"IMAP port {self.port} is outside 1..65535")
        if not isinstance(self.username, str) or not self.username.strip():
            raise ConfigError("IMAP username must be a non-empty string")
        try:
            security = ImapSecurity(str(self.security).lower())
        except ValueError:
            allowed = ", ".join(s.value for s in ImapSecurity)
            raise ConfigError(f"IMAP security {self.security!r} is not one of: {allowed}") from None
        object.__setattr__(self, "security", security)

        has_password = self.password is not None
        has_oauth2 = self.oauth2_token is not None or self.oauth2_token_command is not None
        if not has_password and not has_oauth2:
            raise ConfigError(
                f"IMAP account {self.username!r}: give a password or an OAuth2 token "
                "(oauth2_token or oauth2_token_command)"
            )
        if has_password and has_oauth2:
            raise ConfigError(
                f"IMAP account {self.username!r}: give either a password or OAuth2, not both"
            )
        if self.oauth2_token is not None and self.oauth2_token_command is not None:
            raise ConfigError(
                f"IMAP account {self.username!r}: give either oauth2_token or "
                "oauth2_token_command, not both"
            )
        if self.password is not None and (
            not isinstance(self.password, str) or self.password == ""
        ):
            raise ConfigError(f"IMAP account {self.username!r}: the password is empty")
        if self.oauth2_token is not None:
            _check_token(self.oauth2_token, ConfigError, self.username)
        if self.oauth2_token_command is not None:
            _split_command(self.oauth2_token_command)
        if self.ca_file is not None and (not isinstance(self.ca_file, str) or not self.ca_file):
            raise ConfigError("ca_file must be a non-empty path when given")
        for name in ("connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")

    @property
    def uses_oauth2(self) -> bool:
        """True when the account logs in with XOAUTH2, False for a password LOGIN."""
        return self.password is None

    @property
    def endpoint(self) -> str:
        """``username@host:port (security)``, for messages and logs (no secrets)."""
        return f"{self.username}@{self.host}:{self.port} ({self.security.value})"


def _check_token(token: object, error: type[MailPipelineError], username: str) -> str:
    """Return ``token`` if it can be sent in an XOAUTH2 string, else raise ``error``."""
    if not isinstance(token, str) or token == "":
        raise error(f"IMAP account {username!r}: the OAuth2 token is empty")
    if any(ch.isspace() or ch == "\x01" or not ch.isprintable() for ch in token):
        raise error(
            f"IMAP account {username!r}: the OAuth2 token contains whitespace or control characters"
        )
    return token


def _split_command(command: str) -> list[str]:
    """Split a token command like a POSIX shell would, without running a shell.

    Raises:
        ConfigError: the command is empty or cannot be split (unbalanced quotes).
    """
    if not isinstance(command, str):
        raise ConfigError("oauth2_token_command must be a string")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(f"oauth2_token_command cannot be parsed: {exc}") from None
    if not argv:
        raise ConfigError("oauth2_token_command is empty")
    return argv


def resolve_oauth2_token(
    account: ImapAccount, *, timeout: float = OAUTH2_TOKEN_COMMAND_TIMEOUT
) -> str:
    """Return the OAuth2 access token of ``account``.

    The token is ``account.oauth2_token`` when given; otherwise ``oauth2_token_command`` is run
    (``shlex``-split, no shell, standard input closed) and its standard output, stripped of
    surrounding whitespace, is the token.

    Raises:
        ConfigError: the account has no OAuth2 credential, or the command is unparseable or
            cannot be started (not found, not executable).
        ImapAuthError: the command exited non-zero or printed no usable token.
        ImapConnectError: the command did not finish within ``timeout`` seconds.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    if account.oauth2_token is not None:
        return account.oauth2_token
    if account.oauth2_token_command is None:
        raise ConfigError(f"IMAP account {account.username!r} has no OAuth2 credential")
    argv = _split_command(account.oauth2_token_command)
    try:
        completed = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ImapConnectError(
            f"IMAP account {account.username!r}: the OAuth2 token command {argv[0]!r} "
            f"did not finish within {timeout:g} s"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"IMAP account {account.username!r}: cannot run the OAuth2 token command "
            f"{argv[0]!r}: {exc.strerror or exc}"
        ) from None
    if completed.returncode != 0:
        stderr = completed.stderr.decode("utf-8", "replace").strip()
        detail = f": {stderr[-300:]}" if stderr else ""
        raise ImapAuthError(
            f"IMAP account {account.username!r}: the OAuth2 token command {argv[0]!r} "
            f"exited with status {completed.returncode}{detail}"
        )
    try:
        token = completed.stdout.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ImapAuthError(
            f"IMAP account {account.username!r}: the OAuth2 token command {argv[0]!r} "
            "printed something that is not UTF-8"
        ) from None
    return _check_token(token, ImapAuthError, account.username)


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


# --- error translation -----------------------------------------------------------------------


def _redact(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


def _exception_text(exc: BaseException) -> str:
    """The human part of an exception, with imaplib's ``b'...'`` wrapping removed."""
    text = str(exc).strip()
    if len(text) >= 3 and text[0] == "b" and text[1] in "'\"" and text[-1] == text[1]:
        text = text[2:-1]
    return text or type(exc).__name__


def _is_connection_failure(exc: BaseException | None) -> bool:
    """True if ``exc`` (or what it was raised while handling) is a dropped/failed connection."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OSError | imaplib.IMAP4.abort | EOFError):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _classify(
    exc: BaseException,
    *,
    action: str,
    phase: Literal["connect", "command"],
    secrets: Iterable[str | None] = (),
) -> ImapError | None:
    """Return the typed error for ``exc``, or None when ``exc`` is not an IMAP failure."""
    secrets = tuple(secrets)
    detail = _redact(_exception_text(exc), secrets)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ImapTLSError(f"{action}: the server certificate was not accepted: {detail}")
    if isinstance(exc, ssl.SSLError) and phase == "connect":
        return ImapTLSError(f"{action}: TLS handshake failed: {detail}")
    if isinstance(exc, TimeoutError | socket.timeout):
        return ImapConnectError(f"{action}: timed out ({detail})")
    if isinstance(exc, socket.gaierror):
        return ImapConnectError(f"{action}: host name lookup failed: {detail}")
    if isinstance(exc, OSError):
        return ImapConnectError(f"{action}: connection failed: {detail}")
    if isinstance(exc, EOFError):
        return ImapConnectError(f"{action}: the server closed the connection")
    if isinstance(exc, CapabilityError) and "STARTTLS" in str(exc).upper():
        return ImapTLSError(f"{action}: the server does not offer STARTTLS")
    if isinstance(exc, LoginError):
        if _is_connection_failure(exc.__cause__ or exc.__context__):
            return ImapConnectError(f"{action}: the connection dropped during login: {detail}")
        if "[UNAVAILABLE]" in detail.upper():
            return ImapConnectError(
                f"{action}: the server cannot check credentials right now: {detail}"
            )
        return ImapAuthError(f"{action}: the server refused the credentials: {detail}")
    if isinstance(exc, imaplib.IMAP4.abort):
        return ImapConnectError(f"{action}: the connection was lost: {detail}")
    if isinstance(exc, imaplib.IMAP4.error):  # includes imapclient's own errors
        return ImapProtocolError(f"{action}: {detail}")
    return None


@contextmanager
def translate_imap_errors(
    action: str = "IMAP command", *, secrets: Iterable[str | None] = ()
) -> Iterator[None]:
    """Turn IMAP library and socket exceptions raised inside the block into typed errors.

    Use it around every IMAP command after :func:`connect`; ``action`` says what was being done
    (it starts the error message). Errors that are already :class:`MailPipelineError` and
    exceptions that have nothing to do with IMAP (bugs, ``KeyboardInterrupt``) pass through
    unchanged. The original exception is kept as ``__cause__``.

    Raises:
        ImapConnectError: ``OSError`` (refused, reset, timeout, ...), ``imaplib.IMAP4.abort``
            (connection lost, ``BYE``), ``EOFError``, an ``ssl.SSLError`` after the handshake.
        ImapTLSError: a certificate verification failure.
        ImapAuthError: ``imapclient.exceptions.LoginError`` from a refused login.
        ImapProtocolError: any other ``imaplib.IMAP4.error`` (NO/BAD, bad response).
    """
    try:
        yield
    except MailPipelineError:
        raise
    except Exception as exc:
        typed = _classify(exc, action=action, phase="command", secrets=secrets)
        if typed is None:
            raise
        raise typed from exc


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
    ``read_timeout``. A password logs in with LOGIN, OAuth2 with AUTHENTICATE XOAUTH2.

    Returns:
        A connected, logged-in :class:`imapclient.IMAPClient` (``use_uid`` is on: commands take
        and return UIDs). The caller must log out; prefer :func:`imap_session`.

    Raises:
        ConfigError: ``ca_file`` is unusable, or the OAuth2 token command cannot be run.
        ImapTLSError: TLS handshake or certificate verification failed, or STARTTLS is not
            offered.
        ImapConnectError: the server is unreachable, refused the connection, timed out or
            dropped it, or answered the login with ``[UNAVAILABLE]``.
        ImapAuthError: the server refused the credentials (or the token command failed).
        ImapProtocolError: the server answered something unusable before login finished.
    """
    context = build_ssl_context(account) if account.security is not ImapSecurity.PLAIN else None
    token = resolve_oauth2_token(account) if account.uses_oauth2 else None
    secrets = (account.password, token)
    where = f"IMAP {account.host}:{account.port}"
    timeout = imapclient.SocketTimeout(connect=account.connect_timeout, read=account.read_timeout)

    try:
        client = imapclient.IMAPClient(
            account.host,
            port=account.port,
            ssl=account.security is ImapSecurity.SSL,
            ssl_context=context,
            timeout=timeout,
        )
    except MailPipelineError:
        raise
    except Exception as exc:
        typed = _classify(exc, action=f"connecting to {where}", phase="connect", secrets=secrets)
        if typed is None:
            raise
        raise typed from exc

    try:
        if account.security is ImapSecurity.STARTTLS:
            try:
                client.starttls(context)
            except Exception as exc:
                typed = _classify(
                    exc, action=f"STARTTLS with {where}", phase="connect", secrets=secrets
                )
                if typed is None:
                    raise
                raise typed from exc
            client.socket().settimeout(account.read_timeout)
        try:
            if token is not None:
                client.oauth2_login(account.username, token)
            else:
                assert account.password is not None
                client.login(account.username, account.password)
        except Exception as exc:
            typed = _classify(
                exc,
                action=f"login to {where} as {account.username!r}",
                phase="command",
                secrets=secrets,
            )
            if typed is None:
                raise
            raise typed from exc
    except BaseException:
        _close_quietly(client, logout=False)
        raise
    log.debug("logged in to %s", account.endpoint)
    return client


@contextmanager
def imap_session(account: ImapAccount) -> Iterator[imapclient.IMAPClient]:
    """Connect and log in (see :func:`connect`), yield the client, then log out and close.

    Logging out and closing never raise and never replace an exception raised in the block.
    Exceptions raised by IMAP commands inside the block are *not* translated: wrap them in
    :func:`translate_imap_errors`.

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
