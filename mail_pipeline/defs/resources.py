"""Resources: the one place where the core's services are built, from the settings loader.

The store URL, attachment root, spool directory and secret key come from
:func:`mail_pipeline.platform.settings.load_settings` -- the loader the CLI uses, with its
precedence
for the key (``MAIL_PIPELINE_SECRET_KEY``, then ``..._KEY_FILE``, then the home's
``secret.key``) -- when a run, schedule or sensor initialises the resource, never at import
time: a run the daemon launches with the env file sees what ``mail-pipeline`` sees in a shell
with the same file. A value given to a resource explicitly (tests, the launchpad) wins over the
settings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Self

import dagster as dg
from pydantic import Field, PrivateAttr

from mail_pipeline.intake.imap.circuit import MailboxCircuitBreaker
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.fetcher import MailboxFetcher
from mail_pipeline.intake.imap.shard import (
    DEFAULT_CONNECTIONS_PER_HOST,
    DEFAULT_FETCH_WORKERS,
    ShardLimits,
)
from mail_pipeline.intake.limits import DEFAULT_MAX_MESSAGE_BYTES
from mail_pipeline.intake.spool.ingest import SpoolIngestService
from mail_pipeline.oauth2.tokens import RefreshPolicy
from mail_pipeline.platform.settings import Settings, load_settings
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import MailStore

#: The lease that keeps two email_fetch_job runs from fetching at once.
FETCH_LOCK = "email_fetch"


class _FromSettings(dg.ConfigurableResource):  # type: ignore[type-arg]
    """A resource whose empty fields are filled from the settings when Dagster initialises it.

    Dagster hands ops and sensors what :meth:`create_resource` returns: a copy with every empty
    field set from :func:`load_settings`, read at that moment.
    """

    _settings: Settings | None = PrivateAttr(default=None)

    def settings(self) -> Settings:
        """Return the settings this resource was filled from (loaded now if it was not)."""
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def _from_settings(self, settings: Settings) -> dict[str, Any]:
        """Return the field values to take from ``settings`` (only for fields left empty)."""
        return {}

    def filled(self, settings: Settings) -> Self:
        """Return a copy with the empty fields set from ``settings``."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        values.update(self._from_settings(settings))
        copy = type(self)(**values)
        copy._settings = settings
        return copy

    def create_resource(self, context: dg.InitResourceContext) -> Self:
        """Return what ops and sensors get: :meth:`filled` with the settings read now."""
        return self.filled(self.settings())


class StoreResource(_FromSettings):
    """The mail store (SQLite file by default, PostgreSQL in production)."""

    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the mail store "
        "(empty: MAIL_PIPELINE_DATABASE_URL or its default)",
    )
    pool_size: int = Field(
        default=DEFAULT_FETCH_WORKERS + 4,
        description="PostgreSQL connections kept per process: a fetch shard's threads, its "
        "heartbeat and the op (SQLite opens one per transaction)",
    )
    _store: MailStore | None = PrivateAttr(default=None)

    def _from_settings(self, settings: Settings) -> dict[str, Any]:
        return {} if self.database_url else {"database_url": settings.database_url}

    def get(self) -> MailStore:
        """Return the store, opened once per process (and migrated to the newest schema)."""
        if self._store is None:
            store = MailStore(
                self.database_url or self.settings().database_url, pool_size=self.pool_size
            )
            store.upgrade()
            self._store = store
        return self._store

    @contextlib.contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[Self]:
        # The copy that ops used holds the open store: close that one.
        resource = self.create_resource(context)
        try:
            yield resource
        finally:
            resource.teardown_after_execution(context)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.dispose()
            self._store = None


class AttachmentsResource(_FromSettings):
    """Where attachment files are written."""

    root: str = Field(
        default="",
        description="attachment root directory "
        "(empty: MAIL_PIPELINE_ATTACHMENT_ROOT or its default)",
    )
    fsync: bool = Field(default=True, description="fsync each file before the commit")

    def _from_settings(self, settings: Settings) -> dict[str, Any]:
        return {} if self.root else {"root": str(settings.attachment_root)}

    def storage(self) -> AttachmentStorage:
        """Return the attachment storage."""
        return AttachmentStorage(self.root or self.settings().attachment_root, fsync=self.fsync)


class SpoolResource(_FromSettings):
    """The Haraka spool directory and how it is ingested."""

    directory: str = Field(
        default="",
        description="spool root (inbox/, processed/, failed/, "
        "...; empty: MAIL_PIPELINE_SPOOL_DIR or its default)",
    )
    batch_size: int = Field(default=200, description="messages per database transaction")
    max_message_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES, description="larger files go to failed/"
    )

    def _from_settings(self, settings: Settings) -> dict[str, Any]:
        return {} if self.directory else {"directory": str(settings.spool_dir)}

    def ingest_service(
        self, store: MailStore, attachments: AttachmentStorage
    ) -> SpoolIngestService:
        """Return the ingest service of this spool over ``store`` and ``attachments``."""
        return SpoolIngestService(
            store,
            self.directory,
            attachments,
            batch_size=self.batch_size,
            max_size=self.max_message_bytes,
        )


class ImapResource(_FromSettings):
    """IMAP fetch settings and the key that opens stored IMAP passwords."""

    secret_key: str = Field(
        default="",
        description="opens stored passwords (empty: the key of "
        "the settings, read when a password is opened)",
    )
    connect_timeout: float = Field(default=15.0, description="seconds to connect and log in")
    read_timeout: float = Field(default=60.0, description="seconds to wait for an answer")
    batch_size: int = Field(default=100, description="messages per FETCH and transaction")
    max_retries: int = Field(
        default=2,
        description="retries of a quick transient mailbox error (refused, dropped) within "
        "the run; a timeout waits for the next run",
    )
    retry_delay_seconds: float = Field(
        default=2.0, description="first retry delay, doubled for each further retry"
    )
    fetch_workers: int = Field(
        default=DEFAULT_FETCH_WORKERS,
        description="mailboxes one shard step fetches at the same time (threads)",
    )
    max_connections_per_host: int = Field(
        default=DEFAULT_CONNECTIONS_PER_HOST,
        description="simultaneous connections to one IMAP host name, per shard step",
    )
    auth_failures_to_pause: int | None = Field(
        default=None,
        description="pause a mailbox after this many consecutive authentication "
        "failures, 0: never (empty: MAIL_PIPELINE_AUTH_FAILURES_TO_PAUSE or its default, 3)",
    )

    parse_worker_min_messages: int | None = Field(
        default=None,
        description="a folder sync with at least this many new messages parses them in a "
        "worker process, 0: never (empty: MAIL_PIPELINE_PARSE_WORKER_MIN_MESSAGES or its "
        "default, 300)",
    )

    oauth2_endpoint_timeout: float = Field(
        default=RefreshPolicy.endpoint_timeout,
        description="seconds one OAuth2 token request may take",
    )
    oauth2_refresh_attempts: int = Field(
        default=RefreshPolicy.attempts,
        description="token requests per refresh while the provider fails transiently "
        "(unreachable, slow, 429, 5xx); then the mailbox's fetch fails and is retried next run",
    )
    oauth2_refresh_backoff_seconds: float = Field(
        default=RefreshPolicy.backoff,
        description="seconds before the second token request of a refresh, doubled after",
    )

    def config_manager(self, store: MailStore) -> EmailConfigManager:
        """Return the config manager over ``store`` with this key (or the settings' key) and
        this OAuth2 refresh policy.

        Raises:
            SecretKeyError: the settings' key file cannot be read (see
                :attr:`mail_pipeline.platform.settings.Settings.secret_key`).
            ValueError: a refresh setting out of range (a timeout that is not positive, fewer
                than one attempt, a negative backoff).
        """
        policy = RefreshPolicy.with_requests(
            self.oauth2_endpoint_timeout,
            self.oauth2_refresh_attempts,
            self.oauth2_refresh_backoff_seconds,
        )
        return EmailConfigManager(
            store, self.secret_key or self.settings().secret_key, oauth2_policy=policy
        )

    def fetcher(self, store: MailStore, saver: EmailSaveService) -> MailboxFetcher:
        """Return a mailbox fetcher over ``store`` saving through ``saver``, with these
        timeouts, batch size and parse-worker threshold (or the settings').

        Raises:
            ConfigError: the threshold's setting is not a whole number >= 0.
        """
        min_messages = self.parse_worker_min_messages
        if min_messages is None:
            min_messages = self.settings().parse_worker_min_messages
        return MailboxFetcher(
            store,
            saver,
            self.config_manager(store),
            batch_size=self.batch_size,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            parse_process_min_messages=min_messages or None,
        )

    def shard_limits(self) -> ShardLimits:
        """Return the pool size, host cap and retries of a shard step.

        Raises:
            ValueError: a count < 1 or a negative retry setting.
        """
        return ShardLimits(
            self.fetch_workers,
            self.max_connections_per_host,
            self.max_retries,
            self.retry_delay_seconds,
        )

    def circuit_breaker(self, store: MailStore) -> MailboxCircuitBreaker:
        """Return the circuit breaker over ``store`` with this threshold (or the settings').

        Raises:
            ConfigError: the setting is not a whole number >= 0.
            ValueError: this resource's threshold is negative.
        """
        threshold = self.auth_failures_to_pause
        if threshold is None:
            return MailboxCircuitBreaker(
                store, auth_failures_to_pause=self.settings().auth_failures_to_pause
            )
        return MailboxCircuitBreaker(store, auth_failures_to_pause=threshold or None)


class FetchSettingsResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """How the fetch job guards itself."""

    lock_ttl_seconds: int = Field(default=600, description="lease of the fetch lock")
    task_timeout_seconds: int = Field(
        default=600,
        description="EmailTask timeout_seconds: stale after this long without a "
        "heartbeat (the live run renews it)",
    )


def save_service(store: StoreResource, attachments: AttachmentsResource) -> EmailSaveService:
    """Return a save service over the two resources."""
    return EmailSaveService(store.get(), attachments.storage())


def build_resources() -> dict[str, Any]:
    """Return the resources of the code location: filled from :func:`load_settings` when a
    run, schedule or sensor initialises them (nothing is read here)."""
    return {
        "store": StoreResource(),
        "attachments": AttachmentsResource(),
        "spool": SpoolResource(),
        "imap": ImapResource(),
        "fetch_settings": FetchSettingsResource(),
    }
