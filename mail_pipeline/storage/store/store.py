"""MailStore: the one object that talks SQL.

Everything else reaches the database through its repositories::

    store = MailStore("sqlite:///var/mail.db")
    store.upgrade()                      # create or migrate the schema (Alembic)
    store.users.add("alice", "alice@example.org")
    task = store.tasks.create(EmailSource.IMAP)
    token = store.locks.acquire("email_fetch", ttl_seconds=600)

It works unchanged on SQLite (the embedded default) and PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from mail_pipeline.storage.store.base import Clock, WriteGate, utc_now
from mail_pipeline.storage.store.engine import make_engine, normalize_url, read_only
from mail_pipeline.storage.store.locks import LockRepository
from mail_pipeline.storage.store.mailbox_state import MailboxStateRepository
from mail_pipeline.storage.store.maintenance import MaintenanceRepository
from mail_pipeline.storage.store.messages import MessageRepository
from mail_pipeline.storage.store.oauth2_grants import OAuth2GrantRepository
from mail_pipeline.storage.store.tasks import TaskRepository
from mail_pipeline.storage.store.users import UserRepository

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


class MailStore:
    """The mail store: users, tasks, locks, messages, behind one engine.

    Attributes:
        users: users, aliases, settings, recipient lookup.
        tasks: the EmailTask state machine.
        locks: lease locks.
        messages: messages, attachments, IMAP sync positions.
        maintenance: retention deletes with their audit rows, task statistics.
        mailboxes: per-mailbox state (last success, failure streaks, the breaker's pause).
        oauth2_grants: OAuth2 grants of mailboxes (sealed refresh and access tokens).
    """

    def __init__(
        self, url: str, *, clock: Clock = utc_now, echo: bool = False, pool_size: int = 5
    ) -> None:
        """Open (not create) the store at ``url``. On PostgreSQL, keep up to ``pool_size``
        connections open (size it to the threads that use the store at once: a fetch shard's
        workers and their heartbeat); SQLite pools its connections the same way.

        Raises:
            ConfigError: the URL is not a SQLite or PostgreSQL URL.
        """
        self.url = normalize_url(url)
        self._ensure_sqlite_dir()
        self.engine: Engine = make_engine(self.url, echo=echo, pool_size=pool_size)
        sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._sessions: sessionmaker[Session] = sessions
        self.clock = clock
        parsed = make_url(self.url)
        gate = WriteGate(
            os.path.abspath(parsed.database or ":memory:")
            if parsed.get_backend_name() == "sqlite"
            else None
        )
        readers = sessionmaker(read_only(self.engine), expire_on_commit=False)
        parts = (self.engine, sessions, clock, gate, readers)
        self.users = UserRepository(*parts)
        self.tasks = TaskRepository(*parts)
        self.locks = LockRepository(*parts)
        self.messages = MessageRepository(*parts)
        self.maintenance = MaintenanceRepository(*parts)
        self.mailboxes = MailboxStateRepository(*parts)
        self.oauth2_grants = OAuth2GrantRepository(*parts)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def upgrade(self, revision: str = "head") -> None:
        """Create or migrate the schema to ``revision`` with Alembic."""
        from alembic import command

        with self.engine.begin() as connection:
            config = alembic_config(self.url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def schema_revision(self) -> str | None:
        """Return the schema's Alembic revision, or None for an empty database."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def table_names(self) -> list[str]:
        """Return the names of the tables in the database, sorted."""
        return sorted(inspect(self.engine).get_table_names())

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def _ensure_sqlite_dir(self) -> None:
        url = make_url(self.url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            Path(url.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)


def alembic_config(url: str) -> AlembicConfig:
    """Return an Alembic config for the packaged migrations against ``url``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config
