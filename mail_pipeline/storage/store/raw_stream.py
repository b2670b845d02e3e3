"""Writing a big message's raw bytes apart from its row, a piece at a time.

Binding a 25 MiB ``raw_content`` in the multi-row ``INSERT`` costs more memory than the
message itself: SQLite copies the bound value and then builds the whole row from the copy, and
psycopg2 turns ``bytea`` into hex text inside the query string (twice the size, plus the
quoting). So a message of at least :data:`STREAM_ABOVE` bytes is inserted with an empty
``raw_content`` and, in the same transaction, :func:`write_raw` writes its bytes into its row of
``email_message_raw`` (:class:`~.models.EmailMessageRaw`), where ``raw_content`` is the last
column:

* SQLite: the row is inserted with ``zeroblob(n)`` (which SQLite stores without building it,
  in the last column only) and filled through the incremental blob API
  (``sqlite3.Connection.blobopen``), :data:`CHUNK` bytes per write;
* PostgreSQL: the bytes go into a temporary large object with ``lo_put``, one chunk per
  statement, and one ``INSERT ... SELECT lo_get(oid)`` copies them into the row on the server;
  the large object is unlinked before the transaction commits.

Either way the process holds the message once plus one chunk, and the bytes are committed with
the rest of the batch or not at all (a rollback also drops the large object).
:func:`read_raw` is the way back.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from mail_pipeline.storage.store.models import EmailMessageRaw

__all__ = ["CHUNK", "STREAM_ABOVE", "read_raw", "streamed", "write_raw"]

#: A raw message of at least this many bytes is written by :func:`write_raw`.
STREAM_ABOVE: Final = 1 << 20
#: Bytes per write.
CHUNK: Final = 1 << 20

_TABLE: Final = EmailMessageRaw.__tablename__
_COLUMN: Final = "raw_content"


def streamed(raw: bytes) -> bool:
    """Return True when ``raw`` is big enough to be written by :func:`write_raw`."""
    return len(raw) >= STREAM_ABOVE


def write_raw(session: Session, message_pk: int, raw: bytes) -> None:
    """Write ``raw`` as the raw bytes of message ``message_pk`` (whose own ``raw_content`` is
    empty) inside ``session``'s transaction, :data:`CHUNK` bytes at a time.

    Raises:
        sqlite3.Error, sqlalchemy.exc.DBAPIError: the database refused a write (the caller's
            transaction then rolls back as for any failed insert).
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.execute(
            text(f"INSERT INTO {_TABLE} (message_pk, {_COLUMN}) VALUES (:pk, zeroblob(:n))"),
            {"pk": message_pk, "n": len(raw)},
        )
        driver = connection.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        view = memoryview(raw)
        # message_pk is the INTEGER PRIMARY KEY, i.e. the rowid the blob API addresses
        with driver.blobopen(_TABLE, _COLUMN, message_pk) as blob:
            for start in range(0, len(raw), CHUNK):
                blob.write(view[start : start + CHUNK])
        return
    oid = connection.execute(text("SELECT lo_create(0)")).scalar_one()
    for start in range(0, len(raw), CHUNK):
        connection.execute(
            text("SELECT lo_put(:oid, :offset, :chunk)"),
            {"oid": oid, "offset": start, "chunk": raw[start : start + CHUNK]},
        )
    connection.execute(
        text(f"INSERT INTO {_TABLE} (message_pk, {_COLUMN}) SELECT :pk, lo_get(:oid)"),
        {"pk": message_pk, "oid": oid},
    )
    connection.execute(text("SELECT lo_unlink(:oid)"), {"oid": oid})


def read_raw(session: Session, message_pk: int, in_row: bytes) -> bytes:
    """Return the raw bytes of message ``message_pk`` whose row holds ``in_row``: those, or
    when they are empty (a message written by :func:`write_raw`) its ``email_message_raw``
    bytes (``b""`` if it has none)."""
    if in_row:
        return in_row
    stored = session.execute(
        select(EmailMessageRaw.raw_content).where(EmailMessageRaw.message_pk == message_pk)
    ).scalar_one_or_none()
    return stored if stored is not None else b""
