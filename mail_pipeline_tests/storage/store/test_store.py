"""The migration creates the schema on both databases, and it matches the models."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mail_pipeline.storage.store import LastFetch, MailStore
from mail_pipeline.storage.store.models import Base

TABLES = {
    "users",
    "email_aliases",
    "settings",
    "email_tasks",
    "email_messages",
    "email_attachments",
    "task_locks",
    "imap_sync_state",
    "email_task_audit",
    "mailbox_state",
    "oauth2_grants",
    "email_message_parts",
}
HEAD = "0007"


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


def test_migration_0003_gives_existing_tasks_a_heartbeat(store: MailStore) -> None:
    """Rows written before 0003 start from their updated_at; downgrade drops the column."""
    from sqlalchemy import text

    _downgrade(store, "0002")
    assert store.schema_revision() == "0002"
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO email_tasks (task_id, email_source, status, created_at, updated_at, "
                "timeout_seconds, emails_fetched, emails_saved, emails_failed, emails_duplicate, "
                "details, error_message) VALUES ('old', 'IMAP_EMAIL_FETCH', 'RUNNING', "
                ":created, :updated, 600, 0, 0, 0, 0, '{}', '')"
            ),
            {
                "created": datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
                "updated": datetime(2026, 1, 1, 12, 5, tzinfo=UTC),
            },
        )
    store.upgrade()
    assert store.schema_revision() == HEAD
    task = store.tasks.get("old")
    assert task.heartbeat_at == datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
    assert task.is_stale(datetime(2026, 1, 1, 12, 16, tzinfo=UTC))


def test_migration_0002_downgrades_and_upgrades(store: MailStore) -> None:

    _downgrade(store, "0001")
    assert store.schema_revision() == "0001"
    assert not {"email_task_audit", "mailbox_state"} & set(store.table_names())
    store.upgrade("0002")
    assert store.schema_revision() == "0002"
    assert {"email_task_audit", "mailbox_state"} <= set(store.table_names())
    store.upgrade()


def test_migration_0004_starts_existing_mailboxes_with_an_empty_last_fetch(
    store: MailStore,
) -> None:
    """Mailbox rows written before 0004 read as zeros; downgrade drops the columns."""
    from sqlalchemy import text

    user = store.users.add("olduser", "olduser@example.org")
    _downgrade(store, "0003")
    assert store.schema_revision() == "0003"
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO mailbox_state (user_id, consecutive_failures, "
                "consecutive_auth_failures, last_error_kind, last_error, paused, paused_reason, "
                "updated_at) VALUES (:uid, 2, 0, 'connect', 'down', false, '', :now)"
            ),
            {"uid": user.id, "now": datetime(2026, 1, 1, 12, 0, tzinfo=UTC)},
        )
    store.upgrade()
    assert store.schema_revision() == HEAD
    state = store.mailboxes.get(user.id)
    assert state is not None and state.consecutive_failures == 2
    assert state.last_fetch == LastFetch()
    after = store.mailboxes.record_success(user.id, LastFetch(3, 2, 1, 0, 0.25, "run-9"))
    assert after.last_fetch == LastFetch(3, 2, 1, 0, 0.25, "run-9")


def test_migration_0005_starts_failing_mailboxes_from_their_last_failure(
    store: MailStore,
) -> None:
    """Mailboxes failing before 0005 are failing since their last failure; the others are
    not failing; downgrade drops the column."""
    from sqlalchemy import text

    failing = store.users.add("failing", "failing@example.org")
    fine = store.users.add("fine", "fine@example.org")
    _downgrade(store, "0004")
    assert store.schema_revision() == "0004"
    failed_at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    with store.engine.begin() as conn:
        for uid, failures in ((failing.id, 2), (fine.id, 0)):
            conn.execute(
                text(
                    "INSERT INTO mailbox_state (user_id, consecutive_failures, "
                    "consecutive_auth_failures, last_error_kind, last_error, paused, "
                    "paused_reason, last_failure_at, updated_at) VALUES (:uid, :n, 0, "
                    "'connect', 'down', false, '', :failed, :failed)"
                ),
                {"uid": uid, "n": failures, "failed": failed_at},
            )
    store.upgrade()
    assert store.schema_revision() == HEAD
    was_failing, was_fine = store.mailboxes.get(failing.id), store.mailboxes.get(fine.id)
    assert was_failing is not None and was_failing.failing_since == failed_at
    assert was_fine is not None and was_fine.failing_since is None


def test_migration_0007_downgrade_puts_big_messages_back_into_their_rows(
    store: MailStore,
) -> None:
    """A big message's parts, kept apart at 0007, are in its own row again at 0006."""
    from dataclasses import replace

    from sqlalchemy import text

    from mail_pipeline.storage.store.message_parts import STREAM_ABOVE
    from mail_pipeline_tests.fixtures.message_rows import message_row

    alice = store.users.add("alice", "alice@example.org").id
    big = b"big" * (STREAM_ABOVE // 3 + 1)
    body = "café " * (STREAM_ABOVE // 5 + 1)
    small, large = store.messages.insert_batch(
        [
            message_row(alice, 1),
            replace(message_row(alice, 2), raw_content=big, html_content=body, text_content=body),
        ]
    )
    _downgrade(store, "0006")
    assert store.schema_revision() == "0006"
    with store.engine.connect() as conn:
        stored = conn.execute(
            text("SELECT id, raw_content, html_content, text_content FROM email_messages")
        ).all()
    rows: dict[int, tuple[bytes, str, str]] = {pk: (bytes(r), h, t) for pk, r, h, t in stored}
    assert rows == {small: (b"raw", "", "t"), large: (big, body, body)}
    store.upgrade()
    assert store.schema_revision() == HEAD
    assert large is not None and store.messages.get_content(large)["raw_content"] == big
    assert store.messages.get_content(large)["html_content"] == body


def _downgrade(store: MailStore, revision: str) -> None:
    """Downgrade ``store``'s schema to ``revision`` (as ``alembic downgrade`` would)."""
    from alembic import command

    from mail_pipeline.storage.store.store import alembic_config

    with store.engine.begin() as connection:
        config = alembic_config(store.url)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
