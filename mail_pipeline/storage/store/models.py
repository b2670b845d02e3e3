"""SQLAlchemy 2 models of the mail store.

Table names are the ones operators query (``email_tasks`` is the seed system's name). The
schema itself is owned by the Alembic migrations in :mod:`mail_pipeline.migrations`; these
models must stay in step with them (a test compares the two).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime that comes back aware (UTC) on SQLite too.

    SQLite has no time zone type, so values are stored as naive UTC there and re-tagged as UTC
    when read; PostgreSQL keeps ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware datetimes")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table of the store."""


class User(Base):
    """A user of the service: owns messages, aliases and settings."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    # Stored lowercased: e-mail matching is case-insensitive.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    aliases: Mapped[list[EmailAlias]] = relationship(back_populates="user")


class EmailAlias(Base):
    """Another address that delivers to a user (unique case-insensitively: stored lowercased)."""

    __tablename__ = "email_aliases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    email_address: Mapped[str] = mapped_column(String(254), unique=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="aliases")


class Setting(Base):
    """A per-user JSON setting; ``email_config`` is the one the pipeline reads."""

    __tablename__ = "settings"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_settings_user_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(100))
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EmailTask(Base):
    """One fetch task (the seed's EmailTask): its state, counters and execution log."""

    __tablename__ = "email_tasks"
    __table_args__ = (
        Index("email_tasks_status_idx", "status"),
        Index("email_tasks_source_idx", "email_source"),
        Index("email_tasks_created_idx", "created_at"),
        Index("email_tasks_status_created_idx", "status", "created_at"),
        Index("email_tasks_source_status_idx", "email_source", "status"),
        Index("email_tasks_started_idx", "started_at"),
        Index("email_tasks_completed_idx", "completed_at"),
        Index("email_tasks_run_idx", "run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[str] = mapped_column(String(255), unique=True)
    email_source: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    run_id: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Renewed by the live run; the task is stale once it is older than timeout_seconds.
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    timeout_seconds: Mapped[int] = mapped_column(Integer, default=600)
    emails_fetched: Mapped[int] = mapped_column(Integer, default=0)
    emails_saved: Mapped[int] = mapped_column(Integer, default=0)
    emails_failed: Mapped[int] = mapped_column(Integer, default=0)
    emails_duplicate: Mapped[int] = mapped_column(Integer, default=0)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    error_message: Mapped[str] = mapped_column(Text, default="")


class EmailMessage(Base):
    """A stored message of one user. ``dedup_key`` makes (user, message) unique."""

    __tablename__ = "email_messages"
    __table_args__ = (
        UniqueConstraint("user_id", "dedup_key", name="uq_email_messages_user_dedup"),
        Index("email_messages_user_received_idx", "user_id", "received_at"),
        Index("email_messages_content_hash_idx", "content_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The RFC 5322 Message-ID without <>; "" when the message had none (or an unusable one).
    message_id: Mapped[str] = mapped_column(String(998))
    # "mid:<message id>" or "sha256:<content hash>" when the Message-ID is missing/unusable.
    dedup_key: Mapped[str] = mapped_column(String(1000))
    subject: Mapped[str] = mapped_column(Text)
    sender: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    cc: Mapped[list[str]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    raw_content: Mapped[bytes] = mapped_column(LargeBinary)
    html_content: Mapped[str] = mapped_column(Text)
    text_content: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="FETCHED")
    source: Mapped[str] = mapped_column(String(20))
    # Where it came from: "imap:<folder>:<uidvalidity>:<uid>" or "spool:<file id>".
    origin: Mapped[str] = mapped_column(String(500), default="")
    content_hash: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    attachments: Mapped[list[EmailAttachment]] = relationship(
        back_populates="message", cascade="all, delete-orphan", passive_deletes=True
    )


class EmailMessagePart(Base):
    """A big part of a stored message, kept apart from its row (see :mod:`.message_parts`).

    ``name`` is ``raw`` (the message's bytes), ``html`` or ``text`` (its bodies, UTF-8); the
    row's own column for that part is then empty. ``content`` is the last column so that
    SQLite can size it with ``zeroblob`` without building it in memory.
    """

    __tablename__ = "email_message_parts"
    __table_args__ = (UniqueConstraint("message_pk", "name", name="uq_email_message_parts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("email_messages.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(8))
    content: Mapped[bytes] = mapped_column(LargeBinary)


class EmailAttachment(Base):
    """An attachment of a stored message; the bytes live on disk under the attachment root."""

    __tablename__ = "email_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("email_messages.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(1000))
    safe_filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    file_size: Mapped[int] = mapped_column(BigInteger)
    # Relative to the attachment root, "/"-separated.
    file_path: Mapped[str] = mapped_column(String(1000), unique=True)
    is_image: Mapped[bool] = mapped_column(Boolean, default=False)
    is_inline: Mapped[bool] = mapped_column(Boolean, default=False)
    content_id: Mapped[str | None] = mapped_column(String(998))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    message: Mapped[EmailMessage] = relationship(back_populates="attachments")


class TaskLock(Base):
    """A lease lock: held by ``owner_token`` until ``expires_at``."""

    __tablename__ = "task_locks"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner_token: Mapped[str] = mapped_column(String(64))
    # The Dagster run that holds it, so a run-status sensor can free the lease of a dead run.
    run_id: Mapped[str | None] = mapped_column(String(64))
    owner_info: Mapped[str] = mapped_column(String(500), default="")
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ImapSyncState(Base):
    """The sync position of one folder of one user's mailbox."""

    __tablename__ = "imap_sync_state"
    __table_args__ = (UniqueConstraint("user_id", "folder", name="uq_imap_sync_state_user_folder"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(String(500))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    last_fetch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # UIDs that failed to parse, with reasons: [{"uid": 7, "reason": "..."}] (bounded).
    failed_uids: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EmailTaskAudit(Base):
    """The summary of a deleted EmailTask, written by retention in the delete's transaction.

    ``user_id`` is a plain number, not a foreign key: the audit outlives its user.
    """

    __tablename__ = "email_task_audit"
    __table_args__ = (
        Index("email_task_audit_deleted_idx", "deleted_at"),
        Index("email_task_audit_task_idx", "task_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[str] = mapped_column(String(255))
    email_source: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    run_id: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    emails_fetched: Mapped[int] = mapped_column(Integer)
    emails_saved: Mapped[int] = mapped_column(Integer)
    emails_failed: Mapped[int] = mapped_column(Integer)
    emails_duplicate: Mapped[int] = mapped_column(Integer)
    # The task's error_message (FAILED/CANCELLED); "" otherwise.
    error_message: Mapped[str] = mapped_column(Text)
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MailboxState(Base):
    """The health of one user's IMAP mailbox: last success, failure streaks, the breaker."""

    __tablename__ = "mailbox_state"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    consecutive_auth_failures: Mapped[int] = mapped_column(Integer, default=0)
    # "" when the last attempt succeeded; else the ErrorKind value ("auth", "connect", ...).
    last_error_kind: Mapped[str] = mapped_column(String(20), default="")
    last_error: Mapped[str] = mapped_column(Text, default="")
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_reason: Mapped[str] = mapped_column(Text, default="")
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the last fetch (success or failure) did, and the run that did it.
    last_fetched: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_saved: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_duplicates: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    last_run_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # The first failure of the current streak of failed fetches; None after a success.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OAuth2GrantRow(Base):
    """The OAuth2 grant of one user's mailbox: the refresh token and the cached access token.

    Both tokens are sealed (``fernet:v1:...``) by the core above the store; the store never sees
    them in clear. ``expires_at`` is when the cached access token expires (None: no cache);
    ``rotated_count`` counts the refresh tokens the provider rotated in since the grant was
    stored.
    """

    __tablename__ = "oauth2_grants"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    refresh_token: Mapped[str] = mapped_column(Text)
    access_token: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rotated_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
