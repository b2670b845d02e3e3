"""The floor of the two ingest benchmarks: the same storing work with no layers in the way.

The floor answers "what does this work cost at least, in Python, on this machine?", so that a
benchmark can print the project's ingest as a ratio of it (issue 13). It does, per message:

- read the bytes (spool: the ``.eml`` and its ``.meta`` JSON; IMAP: a plain imapclient loop,
  ``EXAMINE INBOX``, ``UID SEARCH ALL``, then ``UID FETCH (BODY.PEEK[] INTERNALDATE)`` in
  batches of ``batch_size`` UIDs);
- parse them with the project's parser, :func:`mail_pipeline.mime.parse_message` (spool:
  ``max_size`` 25 MiB as the ingest does);
- route a spool message to every active user its envelope ``rcpt_to`` reaches (users' e-mails
  and active aliases, lowercased: one bare ``SELECT`` per batch, as the ingest does);
- write each attachment to ``<root>/<user>/<2 hex>/<16 hex>_<safe name>`` (``O_EXCL``, the
  name from the project's :func:`~mail_pipeline.storage.attachments.safe_filename`), then make
  the batch durable with ONE ``syncfs(2)`` of the attachment file system before the commit;
- insert the SAME columns the project stores (``email_messages``: user, Message-ID, dedup key
  ``mid:<id>`` / ``sha256:<hash>``, subject, sender, To, Cc as JSON, received and sent times,
  raw bytes, HTML, text, status, source, origin, content hash, size, created time; and the
  ``email_attachments`` rows) into the project's schema, created by the project's migrations
  (:meth:`MailStore.upgrade`), ``ON CONFLICT (user_id, dedup_key) DO NOTHING`` on the same
  unique key, one transaction per batch; an IMAP batch upserts the folder's
  ``imap_sync_state`` row (UIDVALIDITY, last UID) in the same transaction. SQLite: the bare
  ``sqlite3`` module with the project's connection settings (WAL, ``synchronous=NORMAL``,
  foreign keys, ``BEGIN IMMEDIATE``) and ``executemany``; PostgreSQL: bare ``psycopg2`` with
  ``execute_values`` (``COPY`` cannot skip conflicts nor return the new ids the attachment
  rows need).

With ``parse_in_worker`` the parsing (spool: reading too) runs in a second process, one batch
ahead of the store work of the main process.

It does NOT: claim or move spool files (no rename into a claim folder or ``processed/``, no
directory fsync; the product's crash-safety protocol, reported as "renames" in the profile
split), check the dedup keys already stored before writing files (the product skips the files
of known duplicates; the benchmarks store fresh mail, so both write the same files), clean the
text to fit the columns (NUL removal and length cuts: a no-op on the benchmark's mail), record
an EmailTask, its counters, log and heartbeat, or the mailbox state, quarantine bad messages,
retry a failed batch message by message, read ``RFC822.SIZE`` before the bodies (the IMAP
size limit), fetch the next IMAP batch while one is stored (serial floor), or use a
connection pool. Dates are stored as the project stores them (SQLite: naive UTC text in
SQLAlchemy's format; PostgreSQL: ``timestamptz``), so :func:`stored_rows` of a floor store and
of a project store compare equal.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from mail_pipeline.mime import ParsedAttachment, ParsedMessage, parse_message
from mail_pipeline.storage.attachments import safe_filename

B = TypeVar("B")
P = TypeVar("P")

#: The spool ingest's size limit (25 MiB), passed to the parser as the ingest does.
SPOOL_MAX_SIZE = 25 * 1024 * 1024
HARAKA_SOURCE = "HARAKA_EMAIL_FETCH"
IMAP_SOURCE = "IMAP_EMAIL_FETCH"

MESSAGE_COLUMNS = (
    "user_id",
    "message_id",
    "dedup_key",
    "subject",
    "sender",
    "recipients",
    "cc",
    "received_at",
    "sent_at",
    "raw_content",
    "html_content",
    "text_content",
    "status",
    "source",
    "origin",
    "content_hash",
    "size",
    "created_at",
)
ATTACHMENT_COLUMNS = (
    "user_id",
    "message_id",
    "filename",
    "safe_filename",
    "content_type",
    "file_size",
    "file_path",
    "is_image",
    "is_inline",
    "content_id",
    "sha256",
    "created_at",
)


# --- what goes in --------------------------------------------------------------------------


@dataclass(frozen=True)
class FloorAttachment:
    """An attachment decoded in the parse worker (a parsed one holds a view into the raw
    message, which does not pickle): the fields the rows need and the decoded bytes."""

    filename: str | None
    content_type: str
    content_id: str | None
    inline: bool
    size: int
    sha256: str
    data: bytes = field(repr=False)

    def chunks(self) -> Iterator[bytes]:
        """Yield the decoded content (one chunk)."""
        yield self.data


@dataclass(frozen=True)
class FloorMessage:
    """The fields of a parsed message that the rows take."""

    message_id: str | None
    subject: str
    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    date: datetime | None
    text: str
    html: str
    content_hash: str
    size: int
    raw: bytes = field(repr=False)
    attachments: tuple[ParsedAttachment | FloorAttachment, ...] = ()


def floor_message(parsed: ParsedMessage, *, portable: bool = False) -> FloorMessage:
    """Return the row fields of ``parsed``; ``portable`` decodes the attachments now, so the
    result can be pickled to another process."""
    attachments: tuple[ParsedAttachment | FloorAttachment, ...] = parsed.attachments
    if portable:
        attachments = tuple(
            FloorAttachment(
                a.filename,
                a.content_type,
                a.content_id,
                a.inline,
                a.size,
                a.sha256,
                b"".join(a.chunks()),
            )
            for a in parsed.attachments
        )
    return FloorMessage(
        parsed.message_id,
        parsed.subject,
        parsed.sender,
        parsed.to,
        parsed.cc,
        parsed.date,
        parsed.text,
        parsed.html,
        parsed.content_hash,
        parsed.size,
        parsed.raw,
        attachments,
    )


@dataclass(frozen=True)
class FloorDelivery:
    """One parsed message for one user, with where it came from."""

    user_id: int
    parsed: FloorMessage
    source: str
    origin: str
    received_at: datetime | None


@dataclass(frozen=True)
class FolderCursor:
    """The IMAP folder position a batch moves to (stored with its messages)."""

    user_id: int
    folder: str
    uidvalidity: int
    last_uid: int


@dataclass
class FloorResult:
    """What a floor run did: messages read, rows stored, batches, and its wall seconds."""

    messages: int = 0
    saved: int = 0
    duplicates: int = 0
    batches: int = 0
    seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the figures as JSON-ready values (``msgs_per_s`` included)."""
        rate = self.messages / self.seconds if self.seconds > 0 else 0.0
        return {
            "messages": self.messages,
            "deliveries": self.saved,
            "duplicates": self.duplicates,
            "batches": self.batches,
            "seconds": self.seconds,
            "msgs_per_s": rate,
            **self.extra,
        }


def dedup_key(parsed: FloorMessage) -> str:
    """Return the project's dedup key: ``mid:<Message-ID>``, else ``sha256:<content hash>``."""
    if parsed.message_id:
        return f"mid:{parsed.message_id}"
    return f"sha256:{parsed.content_hash}"


# --- attachment files ----------------------------------------------------------------------


def _libc_syncfs() -> Callable[[int], int]:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True)
    fn: Callable[[int], int] = libc.syncfs
    return fn


class AttachmentFiles:
    """Attachment files under one root, in the project's layout; one ``syncfs`` per batch."""

    def __init__(self, root: Path) -> None:
        """Use ``root`` (created if missing).

        Raises:
            OSError: the root cannot be created, or the C library has no ``syncfs``.
        """
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._folders: set[str] = set()
        self._syncfs = _libc_syncfs()

    def write(self, user_id: int, name: str, content: Iterable[bytes]) -> str:
        """Write the chunks of ``content`` to a new path for ``user_id``; return it, relative.

        Raises:
            OSError: the file cannot be created or written.
        """
        token = secrets.token_hex(8)
        folder = f"{user_id}/{token[:2]}"
        if folder not in self._folders:
            (self.root / folder).mkdir(parents=True, exist_ok=True)
            self._folders.add(folder)
        relative = f"{folder}/{token}_{name}"
        with open(self.root / relative, "xb") as handle:
            for chunk in content:
                handle.write(chunk)
        return relative

    def remove(self, relatives: Iterable[str]) -> None:
        """Delete the given files (missing ones are fine)."""
        for relative in relatives:
            (self.root / relative).unlink(missing_ok=True)

    def sync(self) -> None:
        """``syncfs(2)`` the file system of the root.

        Raises:
            OSError: the flush failed.
        """
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if self._syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
        finally:
            os.close(fd)


# --- the two bare stores -------------------------------------------------------------------


class FloorStore(Protocol):
    """A bare database connection that stores one batch per transaction."""

    def resolve(self, addresses: set[str]) -> dict[str, set[int]]:
        """Return {lowercased address: ids of the active users it reaches}."""

    def insert(
        self,
        messages: list[tuple[Any, ...]],
        attachments: list[list[tuple[Any, ...]]],
        cursor: FolderCursor | None,
    ) -> list[int | None]:
        """Insert one batch (attachment rows without their message id) and commit; return
        each message's new id, or None for a conflict on (user, dedup key)."""

    def close(self) -> None:
        """Close the connection."""


def _sqlite_time(when: datetime) -> str:
    """SQLAlchemy's SQLite text for an aware ``when``: naive UTC with microseconds."""
    return when.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


_RESOLVE_SQL = (
    "SELECT email, id FROM users WHERE is_active AND email IN ({marks}) "
    "UNION ALL SELECT a.email_address, a.user_id FROM email_aliases a "
    "JOIN users u ON u.id = a.user_id "
    "WHERE a.is_active AND u.is_active AND a.email_address IN ({marks})"
)
_SYNC_SQL = (
    "INSERT INTO imap_sync_state (user_id, folder, uidvalidity, last_uid, last_fetch_at, "
    "failed_uids, updated_at) VALUES ({m}, {m}, {m}, {m}, {m}, {m}, {m}) "
    "ON CONFLICT (user_id, folder) DO UPDATE SET uidvalidity = excluded.uidvalidity, "
    "last_uid = excluded.last_uid, last_fetch_at = excluded.last_fetch_at, "
    "updated_at = excluded.updated_at"
)


class SqliteFloor:
    """``sqlite3`` with the project's connection settings."""

    time_value = staticmethod(_sqlite_time)

    def __init__(self, path: str) -> None:
        """Connect to the SQLite file ``path`` (its schema made by the migrations)."""
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=NORMAL"):
            self.conn.execute(f"PRAGMA {pragma}")
        cols = ", ".join(MESSAGE_COLUMNS)
        marks = ", ".join("?" * len(MESSAGE_COLUMNS))
        self._messages_sql = (
            f"INSERT INTO email_messages ({cols}) VALUES ({marks}) "
            "ON CONFLICT (user_id, dedup_key) DO NOTHING"
        )
        cols = ", ".join(ATTACHMENT_COLUMNS)
        marks = ", ".join("?" * len(ATTACHMENT_COLUMNS))
        self._attachments_sql = f"INSERT INTO email_attachments ({cols}) VALUES ({marks})"

    def resolve(self, addresses: set[str]) -> dict[str, set[int]]:
        """See :class:`FloorStore`."""
        found: dict[str, set[int]] = {}
        if addresses:
            marks = ", ".join("?" * len(addresses))
            args = [*addresses, *addresses]
            for address, user_id in self.conn.execute(_RESOLVE_SQL.format(marks=marks), args):
                found.setdefault(address, set()).add(user_id)
        return found

    def insert(
        self,
        messages: list[tuple[Any, ...]],
        attachments: list[list[tuple[Any, ...]]],
        cursor: FolderCursor | None,
    ) -> list[int | None]:
        """See :class:`FloorStore`. The write lock is held from ``BEGIN IMMEDIATE``, so the
        rows this transaction inserts are exactly those with an id above the old maximum."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            base = conn.execute("SELECT COALESCE(MAX(id), 0) FROM email_messages").fetchone()[0]
            conn.executemany(self._messages_sql, messages)
            new = {
                (user_id, key): pk
                for pk, user_id, key in conn.execute(
                    "SELECT id, user_id, dedup_key FROM email_messages WHERE id > ?", (base,)
                )
            }
            ids = _match_ids(messages, new)
            rows = _attachment_rows(ids, attachments)
            if rows:
                conn.executemany(self._attachments_sql, rows)
            if cursor is not None:
                conn.execute(_SYNC_SQL.format(m="?"), _sync_values(cursor, self.time_value))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return ids

    def close(self) -> None:
        """See :class:`FloorStore`."""
        self.conn.close()


class PostgresFloor:
    """``psycopg2`` with ``execute_values``."""

    time_value = staticmethod(lambda when: when)

    def __init__(self, dsn: str) -> None:
        """Connect with the libpq ``dsn``."""
        import psycopg2  # type: ignore[import-untyped]

        self.conn = psycopg2.connect(dsn)
        self._messages_sql = (
            f"INSERT INTO email_messages ({', '.join(MESSAGE_COLUMNS)}) VALUES %s "
            "ON CONFLICT (user_id, dedup_key) DO NOTHING RETURNING id, user_id, dedup_key"
        )
        self._attachments_sql = (
            f"INSERT INTO email_attachments ({', '.join(ATTACHMENT_COLUMNS)}) VALUES %s"
        )

    def resolve(self, addresses: set[str]) -> dict[str, set[int]]:
        """See :class:`FloorStore`."""
        found: dict[str, set[int]] = {}
        if addresses:
            marks = ", ".join(["%s"] * len(addresses))
            with self.conn.cursor() as cur:
                cur.execute(_RESOLVE_SQL.format(marks=marks), [*addresses, *addresses])
                for address, user_id in cur.fetchall():
                    found.setdefault(address, set()).add(user_id)
            self.conn.commit()
        return found

    def insert(
        self,
        messages: list[tuple[Any, ...]],
        attachments: list[list[tuple[Any, ...]]],
        cursor: FolderCursor | None,
    ) -> list[int | None]:
        """See :class:`FloorStore`."""
        from psycopg2.extras import execute_values  # type: ignore[import-untyped]

        try:
            with self.conn.cursor() as cur:
                returned = execute_values(
                    cur, self._messages_sql, messages, page_size=max(1, len(messages)), fetch=True
                )
                ids = _match_ids(messages, {(u, k): pk for pk, u, k in returned})
                rows = _attachment_rows(ids, attachments)
                if rows:
                    execute_values(cur, self._attachments_sql, rows, page_size=max(1, len(rows)))
                if cursor is not None:
                    cur.execute(_SYNC_SQL.format(m="%s"), _sync_values(cursor, self.time_value))
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        return ids

    def close(self) -> None:
        """See :class:`FloorStore`."""
        self.conn.close()


def _attachment_rows(
    ids: Sequence[int | None], attachments: Sequence[Sequence[tuple[Any, ...]]]
) -> list[tuple[Any, ...]]:
    """Return the attachment rows of the messages that got a new id, that id put in second
    place (after the user id); those of a conflicting message are dropped."""
    return [
        (row[0], pk, *row[1:])
        for pk, atts in zip(ids, attachments, strict=True)
        if pk is not None
        for row in atts
    ]


def _sync_values(cursor: FolderCursor, time_value: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """Return the values of ``_SYNC_SQL`` for ``cursor``, now as the fetch and update time
    (made the column's value by ``time_value``), no failed UIDs."""
    now = time_value(datetime.now(UTC))
    return (cursor.user_id, cursor.folder, cursor.uidvalidity, cursor.last_uid, now, "[]", now)


def _match_ids(
    messages: Sequence[tuple[Any, ...]], new: dict[tuple[int, str], int]
) -> list[int | None]:
    """Each message's new id by its (user, dedup key); None for a conflict (also a repeat
    inside the batch)."""
    ids: list[int | None] = []
    seen: set[tuple[int, str]] = set()
    for row in messages:
        key = (row[0], row[2])
        ids.append(None if key in seen else new.get(key))
        seen.add(key)
    return ids


def postgres_dsn(url: str) -> str:
    """Return the libpq DSN of a SQLAlchemy ``postgresql[+psycopg2]://`` URL."""
    parts = urlsplit(url)
    dsn = {
        "host": parts.hostname or "",
        "port": str(parts.port or 5432),
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "dbname": parts.path.lstrip("/"),
    }
    return " ".join(f"{k}={v}" for k, v in dsn.items() if v)


def open_floor_store(url: str) -> SqliteFloor | PostgresFloor:
    """Return the bare store for a SQLAlchemy URL (``sqlite:///path`` or ``postgresql...``).

    Raises:
        ValueError: another kind of URL.
    """
    if url.startswith("sqlite:///"):
        return SqliteFloor(url[len("sqlite:///") :])
    if url.startswith("postgresql"):
        return PostgresFloor(postgres_dsn(url))
    raise ValueError(f"not a SQLite or PostgreSQL URL: {url}")


# --- one batch -----------------------------------------------------------------------------


class FloorSaver:
    """Stores batches of deliveries: attachment files, one ``syncfs``, one transaction."""

    def __init__(self, store: SqliteFloor | PostgresFloor, files: AttachmentFiles) -> None:
        """Save into ``store`` with attachment files in ``files``."""
        self.store = store
        self.files = files
        self.time = store.time_value

    def save(self, deliveries: Sequence[FloorDelivery], cursor: FolderCursor | None = None) -> int:
        """Store ``deliveries`` (and ``cursor``) in one transaction; return how many were new.

        Raises:
            OSError: an attachment file could not be written or flushed (nothing committed).
            Exception: the driver's error (nothing committed; the batch's files removed).
        """
        t = self.time
        now = datetime.now(UTC)
        messages: list[tuple[Any, ...]] = []
        attachments: list[list[tuple[Any, ...]]] = []
        written: list[list[str]] = []
        try:
            for d in deliveries:
                p = d.parsed
                paths: list[str] = []
                rows: list[tuple[Any, ...]] = []
                for att in p.attachments:
                    safe = safe_filename(att.filename, att.content_type)
                    path = self.files.write(d.user_id, safe, att.chunks())
                    paths.append(path)
                    rows.append(
                        (
                            d.user_id,
                            att.filename or safe,
                            safe,
                            att.content_type,
                            att.size,
                            path,
                            att.content_type.startswith("image/"),
                            att.inline,
                            att.content_id or None,
                            att.sha256,
                            t(now),
                        )
                    )
                written.append(paths)
                attachments.append(rows)
                received = d.received_at or p.date or now
                messages.append(
                    (
                        d.user_id,
                        p.message_id or "",
                        dedup_key(p),
                        p.subject,
                        p.sender,
                        json.dumps(list(p.to)),
                        json.dumps(list(p.cc)),
                        t(received),
                        t(p.date) if p.date is not None else None,
                        p.raw,
                        p.html,
                        p.text,
                        "FETCHED",
                        d.source,
                        d.origin,
                        p.content_hash,
                        p.size,
                        t(now),
                    )
                )
            self.files.sync()
            ids = self.store.insert(messages, attachments, cursor)
        except BaseException:
            self.files.remove(p for paths in written for p in paths)
            raise
        for pk, paths in zip(ids, written, strict=True):
            if pk is None:
                self.files.remove(paths)
        return sum(pk is not None for pk in ids)


# --- parsing: here, or in a second process one batch ahead ---------------------------------


@contextmanager
def parse_worker(enabled: bool) -> Iterator[ProcessPoolExecutor | None]:
    """Yield a started one-process pool to parse in when ``enabled`` (shut down afterwards),
    else None (parse in this process)."""
    if not enabled:
        yield None
        return
    with ProcessPoolExecutor(1) as pool:
        pool.submit(int).result()  # the worker is up before the caller's timer starts
        yield pool


def parse_and_store(
    batches: Iterable[B],
    parse: Callable[[B, bool], P],
    store: Callable[[P], None],
    pool: ProcessPoolExecutor | None,
) -> None:
    """Store ``parse(batch, portable)`` of every batch, in order: without a ``pool``, each
    batch parsed here and stored; with one, each batch parsed in the pool (``portable``) while
    the previous one is stored.

    Raises:
        Whatever ``parse``, ``store`` or the iteration of ``batches`` raises.
    """
    if pool is None:
        for batch in batches:
            store(parse(batch, False))
        return
    pending: Future[P] | None = None
    for batch in batches:
        ahead = pool.submit(parse, batch, True)
        if pending is not None:
            store(pending.result())
        pending = ahead
    if pending is not None:
        store(pending.result())


# --- the spool floor -----------------------------------------------------------------------


@dataclass(frozen=True)
class SpoolLoaded:
    """One read and parsed spool pair: its id, envelope recipients and received time."""

    stem: str
    rcpt_to: tuple[str, ...]
    received_at: datetime | None
    parsed: FloorMessage


def _iso_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def load_spool_pairs(inbox: str, stems: Sequence[str], portable: bool = False) -> list[SpoolLoaded]:
    """Read and parse the pairs ``stems`` of the spool folder ``inbox`` (``portable``: see
    :func:`floor_message`).

    Raises:
        OSError, ValueError, MessageParseError: a pair cannot be read or parsed (the floor
            has no quarantine: the benchmark's mail is good).
    """
    out: list[SpoolLoaded] = []
    for stem in stems:
        with open(os.path.join(inbox, f"{stem}.meta"), "rb") as handle:
            meta = json.loads(handle.read())
        with open(os.path.join(inbox, f"{stem}.eml"), "rb") as handle:
            raw = handle.read()
        parsed = floor_message(parse_message(raw, max_size=SPOOL_MAX_SIZE), portable=portable)
        rcpt = tuple(a.strip().strip("<>").strip().lower() for a in meta["rcpt_to"] if a.strip())
        out.append(SpoolLoaded(stem, rcpt, _iso_time(meta.get("received_at")), parsed))
    return out


def _spool_batches(inbox: Path, batch_size: int) -> Iterator[list[str]]:
    """The stems of the ready pairs of ``inbox`` (``os.scandir`` order), in batches."""
    batch: list[str] = []
    with os.scandir(inbox) as entries:
        for entry in entries:
            if entry.name.endswith(".meta"):
                batch.append(entry.name[: -len(".meta")])
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
    if batch:
        yield batch


def _spool_deliveries(
    store: SqliteFloor | PostgresFloor, loaded: Sequence[SpoolLoaded]
) -> list[FloorDelivery]:
    resolved = store.resolve({a for item in loaded for a in item.rcpt_to})
    deliveries: list[FloorDelivery] = []
    for item in loaded:
        users: set[int] = set()
        for address in item.rcpt_to:
            users |= resolved.get(address, set())
        for user_id in sorted(users):
            deliveries.append(
                FloorDelivery(
                    user_id, item.parsed, HARAKA_SOURCE, f"haraka:{item.stem}", item.received_at
                )
            )
    return deliveries


def spool_floor(
    url: str, spool: Path, attachment_root: Path, batch_size: int, *, parse_in_worker: bool
) -> FloorResult:
    """Store every pair of ``spool/inbox`` the floor's way; return its figures.

    The timer starts before the inbox is listed (after the connection and, with
    ``parse_in_worker``, the worker process are up) and stops after the last commit.

    Raises:
        OSError, ValueError, MessageParseError, the driver's errors: see the functions used.
    """
    store = open_floor_store(url)
    saver = FloorSaver(store, AttachmentFiles(attachment_root))
    inbox = spool / "inbox"
    result = FloorResult()

    def store_batch(loaded: list[SpoolLoaded]) -> None:
        deliveries = _spool_deliveries(store, loaded)
        saved = saver.save(deliveries)
        result.messages += len(loaded)
        result.saved += saved
        result.duplicates += len(deliveries) - saved
        result.batches += 1

    try:
        with parse_worker(parse_in_worker) as pool:
            started = time.perf_counter()
            load = partial(load_spool_pairs, str(inbox))
            parse_and_store(_spool_batches(inbox, batch_size), load, store_batch, pool)
            result.seconds = time.perf_counter() - started
    finally:
        store.close()
    return result


# --- the IMAP floor ------------------------------------------------------------------------


@dataclass(frozen=True)
class ImapLogin:
    """Where and as whom the IMAP floor logs in (IMAPS, verified against ``ca_file``)."""

    host: str
    port: int
    username: str
    password: str
    ca_file: str
    user_id: int
    folder: str = "INBOX"


FetchedMessage = tuple[int, datetime | None, bytes]
ParsedFetch = tuple[int, datetime | None, FloorMessage]


def parse_fetched(messages: Sequence[FetchedMessage], portable: bool = False) -> list[ParsedFetch]:
    """Parse fetched ``(uid, internaldate, raw)`` messages (``portable``: see
    :func:`floor_message`).

    Raises:
        MessageParseError: one does not parse (the benchmark's mail does).
    """
    return [
        (uid, when, floor_message(parse_message(raw), portable=portable))
        for uid, when, raw in messages
    ]


def _utc(when: datetime | None) -> datetime | None:
    """An INTERNALDATE in UTC (imapclient's own offset class does not pickle); a naive one is
    taken as UTC, as the fetcher does."""
    if when is None:
        return None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def imap_floor(
    url: str, login: ImapLogin, attachment_root: Path, batch_size: int, *, parse_in_worker: bool
) -> FloorResult:
    """Fetch every message of the login's folder with a plain imapclient loop and store it
    the floor's way; return the figures (``extra``: the seconds spent in FETCH commands).

    The timer starts before the connection is opened and stops after the logout.

    Raises:
        imapclient and ssl errors, OSError, MessageParseError, the driver's errors.
    """
    import ssl

    import imapclient

    store = open_floor_store(url)
    saver = FloorSaver(store, AttachmentFiles(attachment_root))
    result = FloorResult()
    context = ssl.create_default_context(cafile=login.ca_file)
    fetch_seconds = 0.0

    def store_batch(parsed: list[ParsedFetch], uidvalidity: int) -> None:
        deliveries = [
            FloorDelivery(
                login.user_id,
                message,
                IMAP_SOURCE,
                f"imap:{login.folder}:{uidvalidity}:{uid}",
                when,
            )
            for uid, when, message in parsed
        ]
        cursor = FolderCursor(login.user_id, login.folder, uidvalidity, parsed[-1][0])
        saved = saver.save(deliveries, cursor)
        result.messages += len(parsed)
        result.saved += saved
        result.duplicates += len(deliveries) - saved
        result.batches += 1

    def fetch_batches(client: Any, uids: list[int]) -> Iterator[list[FetchedMessage]]:
        nonlocal fetch_seconds
        for start in range(0, len(uids), batch_size):
            t0 = time.perf_counter()
            answer = client.fetch(uids[start : start + batch_size], ["BODY.PEEK[]", "INTERNALDATE"])
            fetch_seconds += time.perf_counter() - t0
            yield [
                (uid, _utc(data.get(b"INTERNALDATE")), data[b"BODY[]"])
                for uid, data in sorted(answer.items())
            ]

    try:
        with parse_worker(parse_in_worker) as pool:
            started = time.perf_counter()
            client = imapclient.IMAPClient(
                login.host, port=login.port, ssl=True, ssl_context=context, timeout=60
            )
            client.normalise_times = False  # aware INTERNALDATEs, as the product stores them
            try:
                client.login(login.username, login.password)
                info = client.select_folder(login.folder, readonly=True)
                uidvalidity = int(info[b"UIDVALIDITY"])
                uids = sorted(client.search(["ALL"]))
                parse_and_store(
                    fetch_batches(client, uids),
                    parse_fetched,
                    partial(store_batch, uidvalidity=uidvalidity),
                    pool,
                )
            finally:
                client.logout()
            result.seconds = time.perf_counter() - started
    finally:
        store.close()
    result.extra["fetch_seconds"] = fetch_seconds
    return result


# --- comparing what two stores hold --------------------------------------------------------

_COMPARE_MESSAGES = (
    "SELECT m.id, m.user_id, m.message_id, m.dedup_key, m.subject, m.sender, m.recipients, "
    "m.cc, m.received_at, m.sent_at, m.raw_content, m.html_content, m.text_content, m.status, "
    "m.source, m.origin, m.content_hash, m.size FROM email_messages m"
)
_COMPARE_ATTACHMENTS = (
    "SELECT a.message_id, a.user_id, a.filename, a.safe_filename, a.content_type, a.file_size, "
    "a.is_image, a.is_inline, a.content_id, a.sha256 FROM email_attachments a"
)


def stored_rows(url: str) -> list[tuple[Any, ...]]:
    """Return every stored message of the store at ``url`` as comparable values, sorted: its
    columns but the id, created time and attachment paths (random), with its attachment rows
    (the same way) attached; JSON columns decoded, binary as bytes."""
    store = open_floor_store(url)
    try:
        if isinstance(store, SqliteFloor):
            messages = store.conn.execute(_COMPARE_MESSAGES).fetchall()
            attachments = store.conn.execute(_COMPARE_ATTACHMENTS).fetchall()
        else:
            with store.conn.cursor() as cur:
                cur.execute(_COMPARE_MESSAGES)
                messages = cur.fetchall()
                cur.execute(_COMPARE_ATTACHMENTS)
                attachments = cur.fetchall()
    finally:
        store.close()
    by_message: dict[int, list[tuple[Any, ...]]] = {}
    for pk, user_id, name, safe, ctype, size, image, inline, cid, sha in attachments:
        row = (user_id, name, safe, ctype, size, bool(image), bool(inline), cid, sha)
        by_message.setdefault(pk, []).append(row)
    out: list[tuple[Any, ...]] = []
    for row in messages:
        values = list(row[1:])
        for i in (5, 6):  # recipients, cc: JSON text on SQLite, decoded by psycopg2
            if isinstance(values[i], str):
                values[i] = json.loads(values[i])
            values[i] = tuple(values[i])
        values[9] = bytes(values[9])
        out.append((*values, tuple(sorted(by_message.get(row[0], [])))))
    return sorted(out, key=lambda r: (r[0], r[2], r[14]))  # user, dedup key, origin
