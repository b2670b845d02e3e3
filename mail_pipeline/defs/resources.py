"""Resources: the one place where the core's services are built, with secrets from ``EnvVar``.

Nothing here reads the environment at import time: ``EnvVar`` values are resolved by Dagster
when a run, schedule or sensor uses the resource.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from mail_pipeline.attachments import AttachmentStorage
from mail_pipeline.email_config import EmailConfigManager
from mail_pipeline.limits import DEFAULT_MAX_MESSAGE_BYTES
from mail_pipeline.save_service import EmailSaveService
from mail_pipeline.store import MailStore

#: The lease that keeps two email_fetch_job runs from fetching at once.
FETCH_LOCK = "email_fetch"


class StoreResource(dg.ConfigurableResource):
    """The mail store (SQLite file by default, PostgreSQL in production)."""

    database_url: str = Field(description="SQLAlchemy URL of the mail store")
    _store: MailStore | None = PrivateAttr(default=None)

    def get(self) -> MailStore:
        """Return the store, opened once per process (and migrated to the newest schema)."""
        if self._store is None:
            store = MailStore(self.database_url)
            store.upgrade()
            self._store = store
        return self._store

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.dispose()
            self._store = None


class AttachmentsResource(dg.ConfigurableResource):
    """Where attachment files are written."""

    root: str = Field(description="attachment root directory")
    fsync: bool = Field(default=True, description="fsync each file before the commit")

    def storage(self) -> AttachmentStorage:
        """Return the attachment storage."""
        return AttachmentStorage(self.root, fsync=self.fsync)


class SpoolResource(dg.ConfigurableResource):
    """The Haraka spool directory and how it is ingested."""

    directory: str = Field(description="spool root (inbox/, processed/, failed/, ...)")
    batch_size: int = Field(default=200, description="messages per database transaction")
    max_message_bytes: int = Field(default=DEFAULT_MAX_MESSAGE_BYTES,
                                      description="larger files go to failed/")


class ImapResource(dg.ConfigurableResource):
    """IMAP fetch settings and the key that opens stored IMAP passwords."""

    secret_key: str = Field(description="MAIL_PIPELINE_SECRET_KEY: opens stored passwords")
    connect_timeout: float = Field(default=15.0, description="seconds to connect and log in")
    read_timeout: float = Field(default=60.0, description="seconds to wait for an answer")
    batch_size: int = Field(default=100, description="messages per FETCH and transaction")
    max_retries: int = Field(default=2, description="retries of a transient mailbox error")

    def config_manager(self, store: MailStore) -> EmailConfigManager:
        """Return the config manager over ``store`` with this key."""
        return EmailConfigManager(store, self.secret_key)


class FetchSettingsResource(dg.ConfigurableResource):
    """How the fetch job guards itself."""

    lock_ttl_seconds: int = Field(default=600, description="lease of the fetch lock")
    task_timeout_seconds: int = Field(
        default=600, description="EmailTask timeout_seconds: stale after this long without a "
                                 "heartbeat (the live run renews it)")


def save_service(store: StoreResource, attachments: AttachmentsResource) -> EmailSaveService:
    """Return a save service over the two resources."""
    return EmailSaveService(store.get(), attachments.storage())


def build_resources() -> dict[str, Any]:
    """Return the resources of the code location, configured from environment variables."""
    return {
        "store": StoreResource(database_url=dg.EnvVar("MAIL_PIPELINE_DATABASE_URL")),
        "attachments": AttachmentsResource(root=dg.EnvVar("MAIL_PIPELINE_ATTACHMENT_ROOT")),
        "spool": SpoolResource(directory=dg.EnvVar("MAIL_PIPELINE_SPOOL_DIR")),
        "imap": ImapResource(secret_key=dg.EnvVar("MAIL_PIPELINE_SECRET_KEY")),
        "fetch_settings": FetchSettingsResource(),
    }
