"""OAuth2 grants of IMAP mailboxes: the sealed refresh token and the cached access token.

One ``oauth2_grants`` row per user. The store only keeps what it is given: tokens arrive
sealed (``fernet:v1:...``) from :mod:`mail_pipeline.oauth2.grants`, and a value that is not
sealed is refused, so a clear token can never be written here by mistake.

- :meth:`OAuth2GrantRepository.save_refresh_token` stores a NEW grant (after ``imap authorize``);
- :meth:`OAuth2GrantRepository.save_refresh` stores what a refresh brought (the access token,
  its expiry, a rotated refresh token) only while the grant is still the one that was
  refreshed, so a re-authorization in between is never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mail_pipeline.errors import NotFoundError
from mail_pipeline.platform.secret_box import is_encrypted
from mail_pipeline.storage.store.base import Repository
from mail_pipeline.storage.store.models import OAuth2GrantRow, User

__all__ = ["OAuth2Grant", "OAuth2GrantRepository"]


@dataclass(frozen=True)
class OAuth2Grant:
    """A read-only copy of an ``oauth2_grants`` row (tokens still sealed).

    ``access_token``/``expires_at`` are None when no access token is cached.
    """

    user_id: int
    refresh_token: str = field(repr=False)
    access_token: str | None = field(repr=False)
    expires_at: datetime | None
    rotated_count: int
    created_at: datetime
    updated_at: datetime


def _grant(row: OAuth2GrantRow) -> OAuth2Grant:
    return OAuth2Grant(
        row.user_id,
        row.refresh_token,
        row.access_token,
        row.expires_at,
        row.rotated_count or 0,
        row.created_at,
        row.updated_at,
    )


def _require_sealed(name: str, value: str) -> None:
    if not isinstance(value, str) or not is_encrypted(value):
        raise ValueError(f"{name} must be sealed with the SecretBox before it is stored")


class OAuth2GrantRepository(Repository):
    """The ``oauth2_grants`` table (see the module docstring)."""

    def save_refresh_token(self, user_id: int, sealed_refresh_token: str) -> None:
        """Store a new grant for ``user_id``: the sealed refresh token; any cached access
        token is dropped and ``rotated_count`` starts at 0.

        Raises:
            ValueError: the refresh token is not sealed.
            NotFoundError: no such user.
        """
        _require_sealed("the refresh token", sealed_refresh_token)
        now = self._now()
        values = {
            "user_id": user_id,
            "refresh_token": sealed_refresh_token,
            "access_token": None,
            "expires_at": None,
            "rotated_count": 0,
            "created_at": now,
            "updated_at": now,
        }
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        with self._transaction() as session:
            if session.get(User, user_id) is None:
                raise NotFoundError(f"no user with id {user_id}")
            stmt = insert(OAuth2GrantRow).values(**values)
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["user_id"],
                    set_={k: v for k, v in values.items() if k != "user_id"},
                )
            )

    def get(self, user_id: int) -> OAuth2Grant | None:
        """Return the grant of ``user_id`` (tokens sealed), or None when there is none."""
        with self._reading() as session:
            row = session.get(OAuth2GrantRow, user_id)
            return None if row is None else _grant(row)

    def save_refresh(
        self,
        user_id: int,
        *,
        refreshed_with: str,
        sealed_access_token: str,
        expires_at: datetime,
        sealed_refresh_token: str | None = None,
    ) -> bool:
        """Store what a refresh with the sealed refresh token ``refreshed_with`` brought: the
        sealed access token and its expiry, and the rotated refresh token when the provider
        sent one (``rotated_count`` then goes up by one).

        Returns:
            True when stored; False when the grant is gone or no longer holds
            ``refreshed_with`` (re-authorized or rotated by another refresh): nothing changed.

        Raises:
            ValueError: a token is not sealed.
        """
        _require_sealed("the access token", sealed_access_token)
        if sealed_refresh_token is not None:
            _require_sealed("the refresh token", sealed_refresh_token)
        values: dict[str, object] = {
            "access_token": sealed_access_token,
            "expires_at": expires_at,
            "updated_at": self._now(),
        }
        if sealed_refresh_token is not None and sealed_refresh_token != refreshed_with:
            values["refresh_token"] = sealed_refresh_token
            values["rotated_count"] = OAuth2GrantRow.rotated_count + 1
        with self._transaction() as session:
            result = session.execute(
                update(OAuth2GrantRow)
                .where(
                    OAuth2GrantRow.user_id == user_id,
                    OAuth2GrantRow.refresh_token == refreshed_with,
                )
                .values(**values)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def clear_access_token(self, user_id: int) -> None:
        """Forget the cached access token of ``user_id`` (the next login refreshes)."""
        with self._transaction() as session:
            session.execute(
                update(OAuth2GrantRow)
                .where(OAuth2GrantRow.user_id == user_id)
                .values(access_token=None, expires_at=None, updated_at=self._now())
            )

    def delete(self, user_id: int) -> bool:
        """Remove the grant of ``user_id``.

        Returns:
            True when there was one.
        """
        with self._transaction() as session:
            result = session.execute(
                delete(OAuth2GrantRow).where(OAuth2GrantRow.user_id == user_id)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def all(self) -> list[OAuth2Grant]:
        """Return every grant, by user id (tokens sealed)."""
        with self._reading() as session:
            rows = session.scalars(select(OAuth2GrantRow).order_by(OAuth2GrantRow.user_id))
            return [_grant(r) for r in rows]
