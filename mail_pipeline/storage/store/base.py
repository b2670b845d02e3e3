"""What every repository of the store shares: the session factory and the clock."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import ClassVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class WriteGate:
    """One transaction at a time per SQLite database in this process.

    SQLite has a single writer. Threads that each ``BEGIN IMMEDIATE`` on their own connection
    would queue inside SQLite by polling its busy timeout (sleeping, then failing with
    "database is locked" when the timeout runs out under load). The gate queues them in the
    process instead: a fair hand-over without polling, and no timeout to run out. Processes
    still queue on SQLite's busy timeout. Re-entrant: a thread inside a transaction may open
    another. PostgreSQL needs none (:meth:`hold` does nothing there).
    """

    _gates: ClassVar[dict[str, threading.RLock]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, database: str | None) -> None:
        """Gate the SQLite database file ``database``; None: no gate (PostgreSQL)."""
        self._lock: threading.RLock | None = None
        if database is not None:
            with self._registry_lock:
                self._lock = self._gates.setdefault(database, threading.RLock())

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the gate for the block (at once when there is none)."""
        if self._lock is None:
            yield
            return
        with self._lock:
            yield


class Repository:
    """Base of the store's repositories: a transaction helper over a shared engine."""

    def __init__(
        self,
        engine: Engine,
        sessions: sessionmaker[Session],
        clock: Clock,
        gate: WriteGate | None = None,
        readers: sessionmaker[Session] | None = None,
    ) -> None:
        """``readers`` opens the sessions of :meth:`_reading` (default: ``sessions``)."""
        self._engine = engine
        self._sessions = sessions
        self._readers = readers or sessions
        self._clock = clock
        self._gate = gate or WriteGate(None)

    @property
    def dialect(self) -> str:
        """The database dialect name: ``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        """Yield a session inside one transaction: committed on success, rolled back on error."""
        with self._gate.hold(), self._sessions.begin() as session:
            yield session

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        """Yield a session for reads only, outside the write gate.

        On SQLite (WAL) the transaction is deferred and sees a snapshot, so a reader never
        waits for the writer; a write inside it would fail. Use it for lookups that write
        nothing; anything that reads in order to write stays in :meth:`_transaction`.
        """
        with self._readers.begin() as session:
            yield session

    def _now(self) -> datetime:
        return self._clock()
