"""The migration creates the schema on both databases, and it matches the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mail_pipeline.store import MailStore
from mail_pipeline.store.models import Base

TABLES = {
    "users", "email_aliases", "settings", "email_tasks", "email_messages",
    "email_attachments", "task_locks", "imap_sync_state", "email_task_audit", "mailbox_state",
}
HEAD = "0003"


def test_migration_creates_every_table(store: MailStore) -> None:
    assert set(store.table_names()) >= TABLES
    assert store.schema_revision() == HEAD


def test_models_match_the_migration(store: MailStore) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent(store: MailStore) -> None:
    store.upgrade()
    assert store.schema_revision() == HEAD
