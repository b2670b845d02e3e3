"""What a mailbox fetch did: per folder, per mailbox, and why it failed.

:class:`MailboxResult` is what :meth:`~mail_pipeline.intake.imap.fetcher.MailboxFetcher.fetch_user`
returns, the CLI prints and the circuit breaker records; :func:`error_kind_of` names the kind of
a mailbox-level failure. No Dagster imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mail_pipeline.errors import ImapAuthError, ImapConnectError, ImapError, ImapTLSError
from mail_pipeline.storage.store import TaskCounters

__all__ = [
    "ErrorKind",
    "FolderResult",
    "MailboxOutcome",
    "MailboxResult",
    "error_kind_of",
    "mailbox_metadata",
]


class ErrorKind(StrEnum):
    """Why a mailbox fetch failed ("" when it did not)."""

    NONE = ""
    AUTH = "auth"  #: credentials refused: never retried automatically
    CONNECT = "connect"  #: unreachable, timed out, dropped: transient
    TLS = "tls"  #: certificate or handshake refused: a configuration problem, not transient
    PROTOCOL = "protocol"  #: the server said NO/BAD (e.g. a folder that does not exist)
    CONFIG = "config"  #: no/invalid IMAP config, undecryptable secret, unknown user


@dataclass(frozen=True)
class FolderResult:
    """What one folder's sync did. ``reset``: its UIDVALIDITY changed since the last sync.

    ``too_large``: messages left on the server for their size (also counted in ``failed``).
    """

    folder: str
    uidvalidity: int
    fetched: int
    saved: int
    duplicates: int
    failed: int
    last_uid: int
    reset: bool
    too_large: int = 0


@dataclass(frozen=True)
class MailboxResult:
    """What one user's fetch did.

    ``error`` is "" when the fetch succeeded and never contains a password or token.
    ``warnings`` lists problems that did not fail the fetch (a post-action the server refused).
    ``failed_uids`` holds (folder, uid, reason) for each message that was not stored:
    unparseable, refused by the store, or larger than the account's ``max_message_bytes``
    (reason ``too_large: ...``, not fetched at all, left on the server). ``too_large`` counts
    the last kind; ``counters.failed`` counts them all. ``timed_out``: the CONNECT error was a
    timeout (retrying it at once costs another whole timeout).
    """

    user_id: int
    username: str
    error_kind: ErrorKind
    error: str
    folders: tuple[FolderResult, ...]
    counters: TaskCounters
    seconds: float
    failed_uids: tuple[tuple[str, int, str], ...]
    warnings: tuple[str, ...] = ()
    too_large: int = 0
    #: the CONNECT error was a timeout: the server took the whole timeout to not answer
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """True when the mailbox was fetched without a mailbox-level error."""
        return self.error_kind is ErrorKind.NONE

    @property
    def transient(self) -> bool:
        """True when retrying later may help (CONNECT); AUTH, TLS, CONFIG, PROTOCOL never."""
        return self.error_kind is ErrorKind.CONNECT

    def summary(self) -> str:
        """One line for logs and the CLI: counters per mailbox, and the error if any."""
        c = self.counters
        text = (
            f"{self.username}: fetched {c.fetched}, saved {c.saved}, duplicates {c.duplicate}, "
            f"failed {c.failed}"
            + (f" ({self.too_large} too large, left on the server)" if self.too_large else "")
            + f" in {len(self.folders)} folder(s), {self.seconds:.2f} s"
        )
        if not self.ok:
            text += f"; {self.error_kind.value} error: {self.error}"
        return text


def error_kind_of(exc: BaseException) -> ErrorKind:
    """Return the :class:`ErrorKind` of a mailbox-level exception (TLS before CONNECT)."""
    if isinstance(exc, ImapTLSError):
        return ErrorKind.TLS
    if isinstance(exc, ImapConnectError):
        return ErrorKind.CONNECT
    if isinstance(exc, ImapAuthError):
        return ErrorKind.AUTH
    if isinstance(exc, ImapError):
        return ErrorKind.PROTOCOL
    return ErrorKind.CONFIG


def mailbox_metadata(result: MailboxResult) -> dict[str, Any]:
    """Return what one mailbox's fetch did, as metadata for the UI."""
    c = result.counters
    return {
        "user": result.username,
        "fetched": c.fetched,
        "messages_saved": c.saved,
        "duplicates": c.duplicate,
        "failures": c.failed,
        "too_large": result.too_large,
        "seconds": round(result.seconds, 3),
        "error_kind": result.error_kind.value or "none",
        "error": result.error or "none",
    }


@dataclass(frozen=True)
class MailboxOutcome:
    """One mailbox's fetch and what came of it.

    ``retry``: a transient error with retries left, not recorded yet: the caller retries it.
    ``errors`` / ``warnings``: lines for the log. ``extra``: metadata beyond the mailbox's.
    """

    result: MailboxResult
    retry: bool
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """Return :func:`mailbox_metadata` and ``extra``."""
        return {**mailbox_metadata(self.result), **self.extra}
