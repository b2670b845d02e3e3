"""Turn the exceptions of ``socket``/``ssl``/``imaplib``/``imapclient`` into typed errors.

:func:`translate_imap_errors` wraps the IMAP commands made after login (the fetcher, the CLI)::

    with imap_session(account) as client:
        with translate_imap_errors("select INBOX"):
            client.select_folder("INBOX", readonly=True)

:func:`translating` is the same for the connect phase (:func:`~.connection.connect`), where an
``ssl.SSLError`` is a failed handshake.

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
========================================================  ==================================

:class:`ImapTLSError` is a subclass of :class:`ImapConnectError`. The given secrets (password,
token) are replaced by ``***`` in every message.
"""

from __future__ import annotations

import imaplib
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Literal

from imapclient.exceptions import CapabilityError, LoginError

from mail_pipeline.errors import (
    ImapAuthError,
    ImapConnectError,
    ImapError,
    ImapProtocolError,
    ImapTimeoutError,
    ImapTLSError,
    MailPipelineError,
)

__all__ = ["Translate", "translate_imap_errors", "translating"]

#: A :func:`translate_imap_errors` bound to one account: called with the action a block does,
#: it returns the context manager that translates (and redacts) the block's IMAP errors.
Translate = Callable[[str], AbstractContextManager[None]]

_REDACTED = "***"


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
        return ImapTimeoutError(f"{action}: timed out ({detail})")
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

    Use it around every IMAP command after login; ``action`` says what was being done
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
    with translating(action, "command", secrets):
        yield


@contextmanager
def translating(
    action: str, phase: Literal["connect", "command"], secrets: Iterable[str | None]
) -> Iterator[None]:
    """Turn an IMAP failure inside the block into its typed error, as in a ``phase`` of the
    session: ``"connect"`` (an ``ssl.SSLError`` is a failed handshake) or ``"command"``.

    Raises:
        ImapError: the typed error (see the module docstring), with the original as
            ``__cause__``; other exceptions pass through unchanged.
    """
    try:
        yield
    except MailPipelineError:
        raise
    except Exception as exc:
        typed = _classify(exc, action=action, phase=phase, secrets=secrets)
        if typed is None:
            raise
        raise typed from exc
