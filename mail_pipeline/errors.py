"""The error hierarchy of mail_pipeline.

Every error the core raises on purpose is a :class:`MailPipelineError`, so callers (the CLI,
the Dagster ops) can tell a reported failure from a bug. Each subclass names one kind of
failure; catch the narrowest one you can handle.
"""

from __future__ import annotations


class MailPipelineError(Exception):
    """Base class of every error raised on purpose by mail_pipeline."""


# --- configuration -------------------------------------------------------------------------


class ConfigError(MailPipelineError):
    """A setting or a user's ``email_config`` is missing or invalid."""


class SecretKeyError(ConfigError):
    """``MAIL_PIPELINE_SECRET_KEY`` is missing or cannot decrypt a stored secret."""


# --- store ---------------------------------------------------------------------------------


class StoreError(MailPipelineError):
    """The store refused an operation (not a database outage: those stay SQLAlchemy errors)."""


class NotFoundError(StoreError):
    """A user, alias, task or other row that was asked for does not exist."""


class AlreadyExistsError(StoreError):
    """A row with the same unique key already exists (user name, e-mail, alias)."""


class InvalidTransitionError(StoreError):
    """An EmailTask was asked to move between two states the state machine does not allow."""

    def __init__(self, task_id: str, current: str, requested: str) -> None:
        self.task_id = task_id
        self.current = current
        self.requested = requested
        super().__init__(
            f"email task {task_id}: transition {current} -> {requested} is not allowed"
        )


class LeaseLostError(StoreError):
    """Another owner holds the live lease a run needs (it expired and was taken over)."""


# --- parsing and saving --------------------------------------------------------------------


class MessageParseError(MailPipelineError):
    """A byte sequence could not be turned into a message.

    ``reason`` is a short machine-friendly code (``empty``, ``too_large``, ``no_headers``,
    ``malformed_mime``, ...); the message text says what was wrong for a human.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class MessageTooLargeError(MessageParseError):
    """The message is larger than the configured limit."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__("too_large", f"message is {size} bytes, the limit is {limit} bytes")


class SaveError(MailPipelineError):
    """This message could not be stored (an attachment name the file system refuses, ...).

    A fault of the message itself: it is quarantined and the others go on. A fault of the
    environment is an :class:`EnvironmentFault` instead.
    """


# --- the environment -----------------------------------------------------------------------


class EnvironmentFault(MailPipelineError):
    """Nothing can be stored right now, whatever the message: the fault is outside the mail.

    Transient: the work in hand is put back (spool files return to the inbox, the IMAP cursor
    stays), the run reports failure, and the first run after the fault clears stores it.
    Database outages stay ``SQLAlchemyError`` (connection and operational errors) and are
    treated the same way.
    """


class StorageUnavailable(EnvironmentFault):
    """The attachment root cannot take files: disk full, quota, read-only, permission, I/O."""


# --- IMAP ----------------------------------------------------------------------------------


class ImapError(MailPipelineError):
    """Base class of IMAP fetch failures."""


class ImapConnectError(ImapError):
    """The IMAP server could not be reached or the connection dropped (transient)."""


class ImapTimeoutError(ImapConnectError):
    """The server did not answer in time: down, silent, or too far away for the timeout."""


class ImapTLSError(ImapConnectError):
    """The TLS handshake failed or the server certificate was not trusted."""


class ImapAuthError(ImapError):
    """The server refused the credentials (not transient: never retried automatically)."""


class ImapProtocolError(ImapError):
    """The server answered something the fetcher cannot work with."""


class OAuth2NotAuthorizedError(ImapAuthError):
    """An account with an OAuth2 client has no stored grant: ``mail-pipeline imap authorize``
    has not been run for it (or its grant was removed)."""


class OAuth2GrantError(ImapAuthError):
    """The token endpoint refused the stored grant or the client (``invalid_grant``: revoked or
    expired refresh token; ``invalid_client``: wrong client id or secret). The user must
    re-authorize; counts toward the circuit breaker like a refused login."""


class OAuth2EndpointError(ImapConnectError):
    """The token endpoint could not be used right now: unreachable, too slow, HTTP 5xx or 429,
    or another process kept the account's refresh lock too long (transient: retried)."""


# --- spool ---------------------------------------------------------------------------------


class SpoolError(MailPipelineError):
    """The spool directory is missing, unwritable, or holds something it must not."""


# --- locks ---------------------------------------------------------------------------------


class LockError(MailPipelineError):
    """A lease lock operation was refused (for example a release by a non-holder)."""
