"""The per-mailbox circuit breaker: stop knocking with a password the server keeps refusing.

Every fetch outcome (a :class:`~mail_pipeline.intake.imap.results.MailboxResult`) is recorded in the
store's ``mailbox_state``: a success resets the failure streaks and stamps the last
successful fetch; a failure adds to ``consecutive_failures``, and an AUTH failure also to
``consecutive_auth_failures``. After N consecutive AUTH failures (default 3; callers pass
the setting ``MAIL_PIPELINE_AUTH_FAILURES_TO_PAUSE`` to the constructor) the mailbox is
**paused**: the fetch job skips it
with a log line instead of failing a login every tick (which can also get the account locked
by its provider). ``mail-pipeline imap resume USER`` lifts the pause and resets the streaks.

No Dagster imports.
"""

from __future__ import annotations

from dataclasses import dataclass

from mail_pipeline.errors import NotFoundError
from mail_pipeline.intake.imap.results import ErrorKind, MailboxResult
from mail_pipeline.platform.settings import DEFAULT_AUTH_FAILURES_TO_PAUSE
from mail_pipeline.storage.store import LastFetch, MailboxStatus, MailStore


@dataclass(frozen=True)
class CircuitDecision:
    """What recording one outcome did: the new state, and whether this outcome paused it."""

    state: MailboxStatus
    just_paused: bool

    def log_line(self) -> str:
        """A line for the log naming the mailbox and what happened."""
        s = self.state
        if self.just_paused:
            return (
                f"{s.username}: mailbox PAUSED after {s.consecutive_auth_failures} "
                f"consecutive authentication failures ({s.last_error}); it is skipped "
                f"until `mail-pipeline imap resume {s.username}`"
            )
        if s.consecutive_failures:
            return (
                f"{s.username}: {s.last_error_kind} failure, {s.consecutive_failures} in a "
                f"row ({s.consecutive_auth_failures} authentication): {s.last_error}"
            )
        return f"{s.username}: fetched"


class MailboxCircuitBreaker:
    """Records fetch outcomes and pauses mailboxes; see the module docstring."""

    def __init__(
        self,
        store: MailStore,
        *,
        auth_failures_to_pause: int | None = DEFAULT_AUTH_FAILURES_TO_PAUSE,
    ) -> None:
        """Use ``store``; pause after ``auth_failures_to_pause`` AUTH failures (None: never).

        Raises:
            ValueError: a threshold < 1.
        """
        if auth_failures_to_pause is not None and auth_failures_to_pause < 1:
            raise ValueError(
                f"auth_failures_to_pause must be positive or None, got {auth_failures_to_pause}"
            )
        self.store = store
        self.auth_failures_to_pause = auth_failures_to_pause

    def paused(self) -> dict[int, MailboxStatus]:
        """Return the paused mailboxes by user id."""
        return {m.user_id: m for m in self.store.mailboxes.all(paused_only=True)}

    def record(self, result: MailboxResult, *, run_id: str = "") -> CircuitDecision | None:
        """Record ``result``'s outcome for its user (with what the fetch did, of run
        ``run_id``) and return what it did.

        Returns:
            The decision; None when the result names no existing user (an unknown user's
            CONFIG error has no mailbox to record against).
        """
        if result.user_id <= 0:
            return None
        try:
            return self._record(result, run_id)
        except NotFoundError:
            return None

    def _record(self, result: MailboxResult, run_id: str) -> CircuitDecision:
        mailboxes = self.store.mailboxes
        c = result.counters
        last = LastFetch(c.fetched, c.saved, c.duplicate, c.failed, result.seconds, run_id)
        if result.ok:
            return CircuitDecision(mailboxes.record_success(result.user_id, last), False)
        before = mailboxes.get(result.user_id)
        was_paused = before is not None and before.paused
        kind = result.error_kind.value or ErrorKind.CONFIG.value
        state = mailboxes.record_failure(
            result.user_id,
            kind,
            result.error,
            pause_after_auth_failures=self.auth_failures_to_pause,
            last=last,
        )
        return CircuitDecision(state, state.paused and not was_paused)

    def resume(self, user: int | str) -> tuple[bool, MailboxStatus]:
        """Lift the pause of ``user``'s mailbox (id or name) and reset its streaks.

        Returns:
            (whether it was paused, the new state).

        Raises:
            NotFoundError: no such user.
        """
        user_id = self.store.users.get(user).id
        return self.store.mailboxes.resume(user_id)
