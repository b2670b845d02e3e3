"""The big parts of a message (its raw bytes, its HTML and text bodies), stored apart from its
row and written a piece at a time.

Binding a 25 MiB value in the multi-row ``INSERT`` costs several times its size in memory:
SQLite copies each bound value and then builds the whole row from the copies (and a ``str``
keeps its UTF-8 form cached for as long as it lives), and psycopg2 turns ``bytea`` into hex
text inside the query string. So a part of at least :data:`STREAM_ABOVE` bytes (characters,
for a body) is inserted empty in its ``email_messages`` column and, in the same transaction,
:func:`write_parts` writes it into a row of ``email_message_parts``
(:class:`~.models.EmailMessagePart`; bodies as UTF-8), whose ``content`` is the last column:

* SQLite: the row is inserted with ``zeroblob(n)`` (which SQLite stores without building it,
  in the last column only) and filled through the incremental blob API
  (``sqlite3.Connection.blobopen``), :data:`CHUNK` bytes per write;
* PostgreSQL: the bytes go into a temporary large object with ``lo_put``, one chunk per
  statement, and one ``INSERT ... SELECT lo_get(oid)`` copies them into the row on the server;
  the large object is unlinked before the transaction commits.

Either way the process holds the part once plus one chunk, and the parts are committed with
the rest of the batch or not at all (a rollback also drops the large object).
:func:`read_parts` is the way back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from typing import Final

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from mail_pipeline.storage.store.models import EmailMessagePart

__all__ = ["CHUNK", "STREAM_ABOVE", "read_parts", "streamed", "write_parts"]

#: A part of at least this many bytes (or characters) is written by :func:`write_parts`.
STREAM_ABOVE: Final = 1 << 20
#: Bytes (characters, for a body) per write: on PostgreSQL each costs about 5 times this in
#: transient memory (the escaped bytea, the query text), so it is kept small.
CHUNK: Final = 1 << 18

_TABLE: Final = EmailMessagePart.__tablename__


def streamed(value: bytes | str) -> bool:
    """Return True when ``value`` is big enough to be written by :func:`write_parts`."""
    return len(value) >= STREAM_ABOVE


def write_parts(session: Session, message_pk: int, parts: Mapping[str, bytes | str]) -> None:
    """Write each part of ``parts`` (``raw`` -> raw bytes, ``html``/``text`` -> body text) as
    a part of message ``message_pk`` inside ``session``'s transaction, :data:`CHUNK` at a time.

    Raises:
        UnicodeEncodeError: a body holds a character UTF-8 cannot encode (a lone surrogate).
        sqlite3.Error, sqlalchemy.exc.DBAPIError: the database refused a write (the caller's
            transaction then rolls back as for any failed insert).
    """
    for name, value in parts.items():
        # a body's UTF-8 length, counted a piece at a time: encoding it whole is a copy
        size = sum(len(piece) for piece in _pieces(value))
        _write(session, message_pk, name, size, _pieces(value))


def read_parts(session: Session, message_pk: int) -> dict[str, bytes | str]:
    """Return the parts of message ``message_pk`` stored apart (name -> raw bytes, or body
    text for ``html`` and ``text``); ``{}`` for a message with none."""
    rows = session.execute(
        select(EmailMessagePart.name, EmailMessagePart.content).where(
            EmailMessagePart.message_pk == message_pk
        )
    ).all()
    return {name: content if name == "raw" else content.decode() for name, content in rows}


def _pieces(value: bytes | str) -> Iterator[bytes | memoryview]:
    """Yield ``value`` as :data:`CHUNK`-sized pieces of bytes (text encoded as UTF-8)."""
    if isinstance(value, str):
        for start in range(0, len(value), CHUNK):
            yield value[start : start + CHUNK].encode()
        return
    view = memoryview(value)
    for start in range(0, len(value), CHUNK):
        yield view[start : start + CHUNK]


def _write(
    session: Session, message_pk: int, name: str, size: int, pieces: Iterator[bytes | memoryview]
) -> None:
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        row = connection.execute(
            text(
                f"INSERT INTO {_TABLE} (message_pk, name, content) "
                "VALUES (:pk, :name, zeroblob(:n)) RETURNING id"
            ),
            {"pk": message_pk, "name": name, "n": size},
        ).scalar_one()
        driver = connection.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        # id is the INTEGER PRIMARY KEY, i.e. the rowid the blob API addresses
        with driver.blobopen(_TABLE, "content", row) as blob:
            for piece in pieces:
                blob.write(piece)
        return
    oid = connection.execute(text("SELECT lo_create(0)")).scalar_one()
    offset = 0
    for piece in pieces:
        connection.execute(
            text("SELECT lo_put(:oid, :offset, :piece)"),
            {"oid": oid, "offset": offset, "piece": bytes(piece)},
        )
        offset += len(piece)
    connection.execute(
        text(f"INSERT INTO {_TABLE} (message_pk, name, content) SELECT :pk, :name, lo_get(:oid)"),
        {"pk": message_pk, "name": name, "oid": oid},
    )
    connection.execute(text("SELECT lo_unlink(:oid)"), {"oid": oid})
