"""Users, their aliases and their settings, and the recipient -> users lookup."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mail_pipeline.errors import AlreadyExistsError, NotFoundError
from mail_pipeline.storage.store.base import Repository
from mail_pipeline.storage.store.models import EmailAlias, Setting, User

_USERNAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,150}$")
_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9.-]+\.?[A-Za-z0-9-]*$")


def normalize_address(address: str) -> str:
    """Return ``address`` stripped of spaces and angle brackets, lowercased.

    E-mail matching in this project is case-insensitive, as users expect (the seed system's
    case-sensitive matching lost mail to ``Alice@Example.org``).
    """
    return address.strip().strip("<>").strip().lower()


def check_address(address: str) -> str:
    """Return the normalised ``address``.

    Raises:
        ValueError: it is not a plausible ``local@domain`` address.
    """
    norm = normalize_address(address)
    if len(norm) > 254 or not _ADDRESS.match(norm):
        raise ValueError(f"not an e-mail address: {address!r}")
    return norm


@dataclass(frozen=True)
class UserRecord:
    """A read-only copy of a user row."""

    id: int
    username: str
    email: str
    is_active: bool
    created_at: datetime


@dataclass(frozen=True)
class AliasRecord:
    """A read-only copy of an alias row."""

    id: int
    user_id: int
    username: str
    email_address: str
    is_active: bool


def _user(row: User) -> UserRecord:
    return UserRecord(row.id, row.username, row.email, row.is_active, row.created_at)


class UserRepository(Repository):
    """Users, aliases and per-user settings."""

    # --- users ---------------------------------------------------------------------------

    def add(self, username: str, email: str, *, is_active: bool = True) -> UserRecord:
        """Create a user and return it.

        Raises:
            ValueError: bad user name or e-mail address.
            AlreadyExistsError: the user name, or the address as a user e-mail or alias,
                is taken.
        """
        if not _USERNAME.match(username):
            raise ValueError(f"bad user name {username!r}: use 1-150 letters, digits and _ . @ + -")
        address = check_address(email)
        with self._transaction() as session:
            self._check_address_free(session, address)
            row = User(
                username=username, email=address, is_active=is_active, created_at=self._now()
            )
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                raise AlreadyExistsError(f"user {username!r} or {address} exists") from None
            return _user(row)

    def get(self, user: int | str) -> UserRecord:
        """Return a user by id or user name.

        Raises:
            NotFoundError: no such user.
        """
        with self._reading() as session:
            return _user(self._row(session, user))

    def all(self, *, active_only: bool = False) -> list[UserRecord]:
        """Return users ordered by user name."""
        stmt = select(User).order_by(User.username)
        if active_only:
            stmt = stmt.where(User.is_active.is_(True))
        with self._reading() as session:
            return [_user(r) for r in session.scalars(stmt)]

    def set_active(self, user: int | str, active: bool) -> UserRecord:
        """Enable or disable a user; a disabled user gets no new mail.

        Raises:
            NotFoundError: no such user.
        """
        with self._transaction() as session:
            row = self._row(session, user)
            row.is_active = active
            return _user(row)

    # --- aliases -------------------------------------------------------------------------

    def add_alias(self, user: int | str, address: str) -> AliasRecord:
        """Add an alias address for ``user``.

        Raises:
            ValueError: not an e-mail address.
            NotFoundError: no such user.
            AlreadyExistsError: the address is already a user e-mail or an alias.
        """
        norm = check_address(address)
        with self._transaction() as session:
            owner = self._row(session, user)
            self._check_address_free(session, norm)
            row = EmailAlias(
                user_id=owner.id, email_address=norm, is_active=True, created_at=self._now()
            )
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                raise AlreadyExistsError(f"alias {norm} exists") from None
            return AliasRecord(row.id, owner.id, owner.username, norm, True)

    def list_aliases(self, user: int | str | None = None) -> list[AliasRecord]:
        """Return aliases (of one user, or all), ordered by address.

        Raises:
            NotFoundError: ``user`` given and unknown.
        """
        stmt = (
            select(EmailAlias, User.username)
            .join(User, User.id == EmailAlias.user_id)
            .order_by(EmailAlias.email_address)
        )
        with self._reading() as session:
            if user is not None:
                stmt = stmt.where(EmailAlias.user_id == self._row(session, user).id)
            return [
                AliasRecord(a.id, a.user_id, name, a.email_address, a.is_active)
                for a, name in session.execute(stmt).all()
            ]

    def remove_alias(self, address: str) -> None:
        """Delete an alias.

        Raises:
            NotFoundError: no such alias.
        """
        norm = normalize_address(address)
        with self._transaction() as session:
            row = session.scalars(
                select(EmailAlias).where(EmailAlias.email_address == norm)
            ).one_or_none()
            if row is None:
                raise NotFoundError(f"no alias {norm}")
            session.delete(row)

    # --- recipient lookup ----------------------------------------------------------------

    def user_ids_by_address(self, addresses: Iterable[str]) -> dict[str, set[int]]:
        """Map each given address (normalised) to the ids of the ACTIVE users it reaches.

        An address reaches a user through the user's own e-mail or an active alias; both are
        compared case-insensitively. Addresses that reach nobody are absent from the result.
        """
        wanted = {normalize_address(a) for a in addresses if a and a.strip()}
        if not wanted:
            return {}
        found: dict[str, set[int]] = {}
        with self._reading() as session:
            by_email = select(User.email, User.id).where(
                User.email.in_(wanted), User.is_active.is_(True)
            )
            by_alias = (
                select(EmailAlias.email_address, EmailAlias.user_id)
                .join(User, User.id == EmailAlias.user_id)
                .where(
                    EmailAlias.email_address.in_(wanted),
                    EmailAlias.is_active.is_(True),
                    User.is_active.is_(True),
                )
            )
            for stmt in (by_email, by_alias):
                for address, user_id in session.execute(stmt).all():
                    found.setdefault(address, set()).add(user_id)
        return found

    # --- settings ------------------------------------------------------------------------

    def get_setting(self, user: int | str, key: str) -> dict[str, Any] | None:
        """Return the active setting ``key`` of ``user``, or None.

        Raises:
            NotFoundError: no such user.
        """
        owner = User.id == user if isinstance(user, int) else User.username == user
        stmt = (
            select(Setting.value)
            .join(User, User.id == Setting.user_id)
            .where(owner, Setting.key == key, Setting.is_active.is_(True))
        )
        with self._reading() as session:
            value = session.scalars(stmt).one_or_none()
            if value is None:
                self._row(session, user)  # raises NotFoundError for an unknown user
                return None
            return dict(value)

    def set_setting(self, user: int | str, key: str, value: dict[str, Any]) -> None:
        """Create or replace the setting ``key`` of ``user`` (and make it active).

        Raises:
            NotFoundError: no such user.
        """
        with self._transaction() as session:
            owner = self._row(session, user)
            row = session.scalars(
                select(Setting)
                .where(Setting.user_id == owner.id, Setting.key == key)
                .with_for_update()
            ).one_or_none()
            if row is None:
                session.add(
                    Setting(
                        user_id=owner.id,
                        key=key,
                        value=value,
                        is_active=True,
                        updated_at=self._now(),
                    )
                )
            else:
                row.value = value
                row.is_active = True
                row.updated_at = self._now()

    def users_with_setting(self, key: str) -> list[tuple[UserRecord, dict[str, Any]]]:
        """Return (user, value) for every ACTIVE user with an active setting ``key``."""
        stmt = (
            select(User, Setting.value)
            .join(Setting, Setting.user_id == User.id)
            .where(Setting.key == key, Setting.is_active.is_(True), User.is_active.is_(True))
            .order_by(User.username)
        )
        with self._reading() as session:
            return [(_user(u), dict(v)) for u, v in session.execute(stmt).all()]

    # --- helpers -------------------------------------------------------------------------

    def _row(self, session: Session, user: int | str) -> User:
        if isinstance(user, int):
            row = session.get(User, user)
        else:
            row = session.scalars(select(User).where(User.username == user)).one_or_none()
        if row is None:
            raise NotFoundError(f"no user {user!r}")
        return row

    def _check_address_free(self, session: Session, address: str) -> None:
        taken = session.scalar(select(func.count()).select_from(User).where(User.email == address))
        taken = taken or session.scalar(
            select(func.count()).select_from(EmailAlias).where(EmailAlias.email_address == address)
        )
        if taken:
            raise AlreadyExistsError(f"{address} is already a user's e-mail or an alias")
