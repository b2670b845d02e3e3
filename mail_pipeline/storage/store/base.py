"""What every repository of the store shares: the session factory and the clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class Repository:
    """Base of the store's repositories: a transaction helper over a shared engine."""

    def __init__(self, engine: Engine, sessions: sessionmaker[Session], clock: Clock) -> None:
        self._engine = engine
        self._sessions = sessions
        self._clock = clock

    @property
    def dialect(self) -> str:
        """The database dialect name: ``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        """Yield a session inside one transaction: committed on success, rolled back on error."""
        with self._sessions.begin() as session:
            yield session

    def _now(self) -> datetime:
        return self._clock()
