"""Lease locks: the seed's Redis ``cache.add`` lock, done right.

A lease has an owner token and an expiry. ``acquire`` returns a fresh token or ``None``; only the
holder of the token can ``release`` or ``renew`` it; an expired lease is taken over by the next
``acquire``. Every step is one conditional SQL statement, so it is race-free under concurrent
callers (PostgreSQL re-checks the ``WHERE`` of a concurrent ``UPDATE`` after the first commits;
SQLite serialises writers with ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mail_pipeline.storage.store.base import Repository
from mail_pipeline.storage.store.columns import clean_text, column_length
from mail_pipeline.storage.store.models import TaskLock


@dataclass(frozen=True)
class Lease:
    """A read-only copy of a lock row. ``owner_token`` is deliberately not included."""

    name: str
    run_id: str | None
    owner_info: str
    acquired_at: datetime
    expires_at: datetime

    def is_live(self, now: datetime) -> bool:
        """True while the lease has not expired."""
        return self.expires_at > now


@dataclass(frozen=True)
class LockGrant:
    """A lease a run holds: its name, the owner token and the lease's length in seconds."""

    name: str
    token: str
    ttl_seconds: int


def _check(name: str, ttl_seconds: float) -> None:
    if not name or len(name) > 200:
        raise ValueError("a lock name is 1 to 200 characters")
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")


class LockRepository(Repository):
    """Named lease locks in the ``task_locks`` table."""

    def acquire(
        self,
        name: str,
        ttl_seconds: float,
        *,
        run_id: str | None = None,
        owner_info: str = "",
    ) -> str | None:
        """Take the lease ``name`` for ``ttl_seconds`` seconds.

        Returns:
            The owner token, to be passed to :meth:`release`/:meth:`renew`; ``None`` when
            another owner holds a live lease.

        Raises:
            ValueError: empty name or a non-positive ttl.
        """
        _check(name, ttl_seconds)
        token = secrets.token_hex(16)
        now = self._now()
        expires = now + timedelta(seconds=ttl_seconds)
        values = {
            "name": name,
            "owner_token": token,
            "run_id": run_id,
            "owner_info": clean_text(owner_info, column_length(TaskLock, "owner_info")),
            "acquired_at": now,
            "expires_at": expires,
        }
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        with self._transaction() as session:
            inserted = session.execute(
                insert(TaskLock).values(**values).on_conflict_do_nothing(index_elements=["name"])
            ).rowcount  # type: ignore[attr-defined]
            if inserted == 1:
                return token
            taken_over = session.execute(
                update(TaskLock)
                .where(TaskLock.name == name, TaskLock.expires_at <= now)
                .values(**{k: v for k, v in values.items() if k != "name"})
            ).rowcount  # type: ignore[attr-defined]
            return token if taken_over == 1 else None

    def ensure(
        self, name: str, token: str, ttl_seconds: float, *, run_id: str | None = None
    ) -> bool:
        """Make sure ``token`` holds the lease ``name`` for another ``ttl_seconds``.

        Renews the lease when ``token`` holds it, or takes it with the SAME token when it is
        free or expired (a re-executed Dagster run carries its parent's token).

        Returns:
            True when ``token`` holds a live lease afterwards; False when another owner holds a
            live lease.
        """
        _check(name, ttl_seconds)
        if not token:
            raise ValueError("a lock token is required")
        now = self._now()
        values = {
            "owner_token": token,
            "run_id": run_id,
            "acquired_at": now,
            "expires_at": now + timedelta(seconds=ttl_seconds),
        }
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        with self._transaction() as session:
            renewed = session.execute(
                update(TaskLock)
                .where(TaskLock.name == name, TaskLock.owner_token == token)
                .values(expires_at=values["expires_at"], run_id=run_id)
            ).rowcount  # type: ignore[attr-defined]
            if renewed:
                return True
            inserted = session.execute(
                insert(TaskLock)
                .values(name=name, owner_info="", **values)
                .on_conflict_do_nothing(index_elements=["name"])
            ).rowcount  # type: ignore[attr-defined]
            if inserted:
                return True
            taken = session.execute(
                update(TaskLock)
                .where(TaskLock.name == name, TaskLock.expires_at <= now)
                .values(**values)
            ).rowcount  # type: ignore[attr-defined]
            return bool(taken)

    def release(self, name: str, token: str) -> bool:
        """Release the lease ``name`` if ``token`` holds it (expired or not).

        Returns:
            True if this call released it; False if the token does not hold it (someone
            else's lease, or already released): nothing is changed then.
        """
        with self._transaction() as session:
            result = session.execute(
                delete(TaskLock).where(TaskLock.name == name, TaskLock.owner_token == token)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def renew(self, name: str, token: str, ttl_seconds: float) -> bool:
        """Extend the lease to now + ``ttl_seconds`` if ``token`` still holds it and it is live.

        Returns:
            True if renewed; False if the lease was lost (expired and maybe taken over).
        """
        _check(name, ttl_seconds)
        now = self._now()
        with self._transaction() as session:
            result = session.execute(
                update(TaskLock)
                .where(
                    TaskLock.name == name,
                    TaskLock.owner_token == token,
                    TaskLock.expires_at > now,
                )
                .values(expires_at=now + timedelta(seconds=ttl_seconds))
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def get(self, name: str) -> Lease | None:
        """Return the lease ``name`` (live or expired), or None when nobody holds it."""
        with self._transaction() as session:
            row = session.get(TaskLock, name)
            if row is None:
                return None
            return Lease(row.name, row.run_id, row.owner_info, row.acquired_at, row.expires_at)

    def live(self, name: str) -> Lease | None:
        """Return the lease ``name`` if it is held and not expired, else None."""
        lease = self.get(name)
        return lease if lease is not None and lease.is_live(self._now()) else None

    def release_for_run(self, name: str | None, run_id: str) -> bool:
        """Release the lease ``name`` (every lease when None) held on behalf of run ``run_id``.

        For a run-status sensor cleaning up after a run that failed or was cancelled, and for
        stale-task cleanup after a run that stopped renewing its heartbeat.

        Returns:
            True if a lease was released.
        """
        stmt = delete(TaskLock).where(TaskLock.run_id == run_id)
        if name is not None:
            stmt = stmt.where(TaskLock.name == name)
        with self._transaction() as session:
            return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]

    def force_release(self, name: str) -> bool:
        """Release the lease ``name`` whoever holds it (an operator's command).

        Returns:
            True if there was a lease to release.
        """
        with self._transaction() as session:
            result = session.execute(delete(TaskLock).where(TaskLock.name == name))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def all(self) -> list[Lease]:
        """Return every lease row, live or expired, by name."""
        with self._transaction() as session:
            rows = session.scalars(select(TaskLock).order_by(TaskLock.name))
            return [
                Lease(r.name, r.run_id, r.owner_info, r.acquired_at, r.expires_at) for r in rows
            ]
