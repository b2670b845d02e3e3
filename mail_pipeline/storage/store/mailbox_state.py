"""Per-mailbox state: last successful fetch, failure streaks, and the circuit breaker's pause.

One ``mailbox_state`` row per user whose mailbox was ever fetched (created on the first
record). Every change is one transaction on the row, locked on PostgreSQL (``FOR UPDATE``)
and serialised by ``BEGIN IMMEDIATE`` on SQLite, so two fetches of the same mailbox that end
together both count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mail_pipeline.errors import NotFoundError
from mail_pipeline.storage.store.base import Repository
from mail_pipeline.storage.store.columns import clean_text, column_length
from mail_pipeline.storage.store.models import MailboxState, User

#: Stored error texts are capped at this many characters (a cap of ours: the columns are Text).
#: Like every text a server or a message sent, they lose their NUL characters.
MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class MailboxStatus:
    """A read-only copy of a ``mailbox_state`` row, with the user's name."""

    user_id: int
    username: str
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    consecutive_failures: int
    consecutive_auth_failures: int
    last_error_kind: str
    last_error: str
    paused: bool
    paused_reason: str
    paused_at: datetime | None
    #: what the last fetch did (zeros before the first recorded one)
    last_fetch: LastFetch = field(default_factory=lambda: LastFetch())
    #: the first failure of the current streak of failed fetches (None after a success)
    failing_since: datetime | None = None


@dataclass(frozen=True)
class LastFetch:
    """What one fetch of a mailbox did: messages fetched, saved, duplicate, failed; its
    duration; the run it belonged to ("" when not a Dagster run)."""

    fetched: int = 0
    saved: int = 0
    duplicates: int = 0
    failed: int = 0
    seconds: float = 0.0
    run_id: str = ""


def _status(row: MailboxState, username: str) -> MailboxStatus:
    return MailboxStatus(
        row.user_id,
        username,
        row.last_attempt_at,
        row.last_success_at,
        row.last_failure_at,
        row.consecutive_failures,
        row.consecutive_auth_failures,
        row.last_error_kind or "",
        row.last_error or "",
        bool(row.paused),
        row.paused_reason or "",
        row.paused_at,
        LastFetch(
            row.last_fetched or 0,
            row.last_saved or 0,
            row.last_duplicates or 0,
            row.last_failed or 0,
            row.last_seconds or 0.0,
            row.last_run_id or "",
        ),
        row.failing_since,
    )


def _write_last(row: MailboxState, last: LastFetch | None) -> None:
    if last is None:
        return
    row.last_fetched, row.last_saved = last.fetched, last.saved
    row.last_duplicates, row.last_failed = last.duplicates, last.failed
    row.last_seconds = round(float(last.seconds), 3)
    row.last_run_id = clean_text(last.run_id, column_length(MailboxState, "last_run_id"))


class MailboxStateRepository(Repository):
    """The ``mailbox_state`` rows."""

    def get(self, user_id: int) -> MailboxStatus | None:
        """Return the state of ``user_id``'s mailbox, or None if it was never recorded."""
        stmt = (
            select(MailboxState, User.username)
            .join(User, User.id == MailboxState.user_id)
            .where(MailboxState.user_id == user_id)
        )
        with self._reading() as session:
            found = session.execute(stmt).one_or_none()
            return None if found is None else _status(found[0], found[1])

    def all(self, *, paused_only: bool = False) -> list[MailboxStatus]:
        """Return every recorded mailbox (or only the paused ones), by user name."""
        stmt = (
            select(MailboxState, User.username)
            .join(User, User.id == MailboxState.user_id)
            .order_by(User.username)
        )
        if paused_only:
            stmt = stmt.where(MailboxState.paused.is_(True))
        with self._reading() as session:
            return [_status(row, name) for row, name in session.execute(stmt).all()]

    def states(self, user_ids: Iterable[int]) -> dict[int, MailboxStatus]:
        """Return the recorded state of each of ``user_ids``' mailboxes, by user id (one
        query; users never recorded are absent)."""
        wanted = sorted(set(user_ids))
        if not wanted:
            return {}
        stmt = (
            select(MailboxState, User.username)
            .join(User, User.id == MailboxState.user_id)
            .where(MailboxState.user_id.in_(wanted))
        )
        with self._reading() as session:
            return {row.user_id: _status(row, name) for row, name in session.execute(stmt).all()}

    def paused_user_ids(self) -> set[int]:
        """Return the ids of the users whose mailbox is paused."""
        with self._reading() as session:
            return set(
                session.scalars(select(MailboxState.user_id).where(MailboxState.paused.is_(True)))
            )

    def record_success(self, user_id: int, last: LastFetch | None = None) -> MailboxStatus:
        """Record a successful fetch: reset both failure streaks and the last error; keep
        ``last`` (what the fetch did) when given.

        A success does not lift a pause (only :meth:`resume` does; a paused mailbox is not
        fetched by the job, so a success means an operator fetched it by hand).

        Raises:
            NotFoundError: no such user.
        """
        with self._transaction() as session:
            row, name = self._locked(session, user_id)
            now = self._now()
            row.last_attempt_at = row.last_success_at = row.updated_at = now
            row.consecutive_failures = row.consecutive_auth_failures = 0
            row.last_error_kind = row.last_error = ""
            row.failing_since = None
            _write_last(row, last)
            return _status(row, name)

    def record_failure(
        self,
        user_id: int,
        kind: str,
        error: str,
        *,
        pause_after_auth_failures: int | None,
        last: LastFetch | None = None,
    ) -> MailboxStatus:
        """Record a failed fetch of ``kind`` (an ErrorKind value such as ``"auth"``), and
        ``last`` (what the fetch did before it failed) when given.

        Every failure adds to ``consecutive_failures``. An ``"auth"`` failure also adds to
        ``consecutive_auth_failures``; other kinds leave that streak as it is (an unreachable
        server says nothing about the password). When the auth streak reaches
        ``pause_after_auth_failures`` (None: never) the mailbox is paused, in the same
        transaction.

        Raises:
            NotFoundError: no such user.
            ValueError: an empty ``kind`` or a threshold < 1.
        """
        if not kind:
            raise ValueError("a failure needs its kind")
        if pause_after_auth_failures is not None and pause_after_auth_failures < 1:
            raise ValueError(
                f"pause_after_auth_failures must be positive or None, "
                f"got {pause_after_auth_failures}"
            )
        with self._transaction() as session:
            row, name = self._locked(session, user_id)
            now = self._now()
            row.last_attempt_at = row.last_failure_at = row.updated_at = now
            if row.failing_since is None:
                row.failing_since = now
            row.consecutive_failures += 1
            if kind == "auth":
                row.consecutive_auth_failures += 1
            row.last_error_kind = clean_text(kind, column_length(MailboxState, "last_error_kind"))
            row.last_error = clean_text(error, MAX_ERROR_CHARS)
            _write_last(row, last)
            if (
                not row.paused
                and pause_after_auth_failures is not None
                and row.consecutive_auth_failures >= pause_after_auth_failures
            ):
                row.paused = True
                row.paused_at = now
                row.paused_reason = clean_text(
                    f"{row.consecutive_auth_failures} consecutive authentication failures; "
                    f"last: {error}",
                    MAX_ERROR_CHARS,
                )
            return _status(row, name)

    def pause(self, user_id: int, reason: str) -> MailboxStatus:
        """Pause ``user_id``'s mailbox with ``reason`` (kept if it is already paused).

        Raises:
            NotFoundError: no such user.
            ValueError: an empty reason.
        """
        if not reason.strip():
            raise ValueError("a pause needs a reason")
        with self._transaction() as session:
            row, name = self._locked(session, user_id)
            if not row.paused:
                row.paused, row.paused_at = True, self._now()
                row.paused_reason = clean_text(reason, MAX_ERROR_CHARS)
            row.updated_at = self._now()
            return _status(row, name)

    def resume(self, user_id: int) -> tuple[bool, MailboxStatus]:
        """Lift the pause of ``user_id``'s mailbox and reset its failure streaks.

        Returns:
            (whether it was paused, the new state).

        Raises:
            NotFoundError: no such user.
        """
        with self._transaction() as session:
            row, name = self._locked(session, user_id)
            was_paused = bool(row.paused)
            row.paused, row.paused_at, row.paused_reason = False, None, ""
            row.consecutive_failures = row.consecutive_auth_failures = 0
            row.updated_at = self._now()
            return was_paused, _status(row, name)

    def _locked(self, session: Session, user_id: int) -> tuple[MailboxState, str]:
        """Return the user's row (created if missing), locked, and the user name.

        One statement when the row exists (every fetch after a mailbox's first).
        """
        found = session.execute(
            select(MailboxState, User.username)
            .join(User, User.id == MailboxState.user_id)
            .where(MailboxState.user_id == user_id)
            .with_for_update(of=MailboxState)
            .execution_options(populate_existing=True)
        ).one_or_none()
        if found is not None:
            return found[0], found[1]
        user = session.get(User, user_id)
        if user is None:
            raise NotFoundError(f"no user with id {user_id}")
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        session.execute(
            insert(MailboxState)
            .values(
                user_id=user_id,
                consecutive_failures=0,
                consecutive_auth_failures=0,
                last_error_kind="",
                last_error="",
                paused=False,
                paused_reason="",
                updated_at=self._now(),
            )
            .on_conflict_do_nothing(index_elements=["user_id"])
        )
        row = session.scalars(
            select(MailboxState)
            .where(MailboxState.user_id == user_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        return row, user.username
