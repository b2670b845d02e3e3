"""Engine construction: one place that knows the differences between SQLite and PostgreSQL."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from mail_pipeline.errors import ConfigError

#: The execution option that marks a read-only transaction (see :func:`read_only`).
READ_ONLY = "mail_pipeline_read_only"


def normalize_url(url: str) -> str:
    """Return ``url`` with an explicit driver where SQLAlchemy would guess wrong.

    A bare ``postgresql://`` means psycopg 3 to SQLAlchemy 2.1; this project ships psycopg2.

    Raises:
        ConfigError: the URL is empty, unparseable or names a database this store does not
            support (only SQLite and PostgreSQL are).
    """
    if not url or not url.strip():
        raise ConfigError("the database URL is empty")
    try:
        parsed = make_url(url.strip())
    except Exception as exc:  # sqlalchemy.exc.ArgumentError and friends
        raise ConfigError(f"cannot parse database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg2")
    elif backend != "sqlite":
        raise ConfigError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, echo: bool = False, pool_size: int = 5) -> Engine:
    """Create an engine for ``url`` with the settings the store relies on.

    SQLite: foreign keys on, WAL journal, a 30 s busy timeout, and every transaction opened
    with ``BEGIN IMMEDIATE`` so that two writers queue instead of failing half-way with
    "database is locked" -- except on the :func:`read_only` engine, whose transactions are
    plain (deferred) ``BEGIN``: in WAL mode they read a snapshot without waiting for the writer.
    ``pool_size`` connections stay open (more are opened when needed and closed after use):
    opening one costs its PRAGMAs and closing one a WAL check, several times per mailbox
    without the pool. PostgreSQL: pre-ping, so a restarted server is not an error, and a pool
    of ``pool_size`` connections (plus as many again in overflow, closed after use). On both,
    a pooled connection is never used in another process: after a fork the child opens its
    own.

    Raises:
        ConfigError: see :func:`normalize_url`.
    """
    url = normalize_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            echo=echo,
            # No statement cache: a cached statement keeps its last bound values, and every
            # batch size is a new multi-row INSERT text, so 128 cached batches of raw mail
            # grew the peak RSS of a 10,000-file ingest to 2.5x that of 1,000 files.
            connect_args={"timeout": 30, "check_same_thread": False, "cached_statements": 0},
            poolclass=QueuePool,
            pool_size=pool_size,
            max_overflow=-1,  # never wait for a connection; extra ones close after use
        )
        _configure_sqlite(engine)
    else:
        engine = create_engine(
            url, echo=echo, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size
        )
    _guard_forks(engine)
    return engine


def read_only(engine: Engine) -> Engine:
    """Return ``engine`` marked for read-only transactions (same pool).

    On SQLite their ``BEGIN`` is deferred, so readers run beside the one writer; on PostgreSQL
    nothing changes.
    """
    return engine.execution_options(**{READ_ONLY: True})


def _guard_forks(engine: Engine) -> None:
    """Never hand a pooled connection to a process other than the one that opened it: a
    forked child (a Celery or multiprocessing worker) opens its own instead of sharing the
    parent's socket or SQLite handle."""

    @event.listens_for(engine, "connect")
    def _on_connect(_dbapi_connection: Any, record: Any) -> None:
        record.info["pid"] = os.getpid()

    @event.listens_for(engine, "checkout")
    def _on_checkout(_dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info.get("pid") != os.getpid():
            record.dbapi_connection = proxy.dbapi_connection = None
            raise exc.DisconnectionError("connection opened by another process")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event open the transaction (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        deferred = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")
