"""Initial schema: users, aliases, settings, email tasks, messages, attachments, locks, IMAP sync.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 20:16:12.395188
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "task_locks",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner_token", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("owner_info", sa.String(length=500), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "email_aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("email_address", sa.String(length=254), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email_address"),
    )
    with op.batch_alter_table("email_aliases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_email_aliases_user_id"), ["user_id"], unique=False)

    op.create_table(
        "email_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("dedup_key", sa.String(length=1000), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("cc", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("raw_content", sa.LargeBinary(), nullable=False),
        sa.Column("html_content", sa.Text(), nullable=False),
        sa.Column("text_content", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("origin", sa.String(length=500), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "dedup_key", name="uq_email_messages_user_dedup"),
    )
    with op.batch_alter_table("email_messages", schema=None) as batch_op:
        batch_op.create_index("email_messages_content_hash_idx", ["content_hash"], unique=False)
        batch_op.create_index(
            "email_messages_user_received_idx", ["user_id", "received_at"], unique=False
        )

    op.create_table(
        "email_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=255), nullable=False),
        sa.Column("email_source", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("emails_fetched", sa.Integer(), nullable=False),
        sa.Column("emails_saved", sa.Integer(), nullable=False),
        sa.Column("emails_failed", sa.Integer(), nullable=False),
        sa.Column("emails_duplicate", sa.Integer(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id"),
    )
    with op.batch_alter_table("email_tasks", schema=None) as batch_op:
        batch_op.create_index("email_tasks_completed_idx", ["completed_at"], unique=False)
        batch_op.create_index("email_tasks_created_idx", ["created_at"], unique=False)
        batch_op.create_index("email_tasks_run_idx", ["run_id"], unique=False)
        batch_op.create_index("email_tasks_source_idx", ["email_source"], unique=False)
        batch_op.create_index(
            "email_tasks_source_status_idx", ["email_source", "status"], unique=False
        )
        batch_op.create_index("email_tasks_started_idx", ["started_at"], unique=False)
        batch_op.create_index(
            "email_tasks_status_created_idx", ["status", "created_at"], unique=False
        )
        batch_op.create_index("email_tasks_status_idx", ["status"], unique=False)

    op.create_table(
        "imap_sync_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("folder", sa.String(length=500), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("last_fetch_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_uids", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "folder", name="uq_imap_sync_state_user_folder"),
    )
    op.create_table(
        "settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "key", name="uq_settings_user_key"),
    )
    with op.batch_alter_table("settings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_settings_user_id"), ["user_id"], unique=False)

    op.create_table(
        "email_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=1000), nullable=False),
        sa.Column("safe_filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("file_path", sa.String(length=1000), nullable=False),
        sa.Column("is_image", sa.Boolean(), nullable=False),
        sa.Column("is_inline", sa.Boolean(), nullable=False),
        sa.Column("content_id", sa.String(length=998), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["email_messages.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("file_path"),
    )
    with op.batch_alter_table("email_attachments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_attachments_message_id"), ["message_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_email_attachments_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_email_attachments_user_id"), ["user_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("email_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_attachments_user_id"))
        batch_op.drop_index(batch_op.f("ix_email_attachments_sha256"))
        batch_op.drop_index(batch_op.f("ix_email_attachments_message_id"))

    op.drop_table("email_attachments")
    with op.batch_alter_table("settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settings_user_id"))

    op.drop_table("settings")
    op.drop_table("imap_sync_state")
    with op.batch_alter_table("email_tasks", schema=None) as batch_op:
        batch_op.drop_index("email_tasks_status_idx")
        batch_op.drop_index("email_tasks_status_created_idx")
        batch_op.drop_index("email_tasks_started_idx")
        batch_op.drop_index("email_tasks_source_status_idx")
        batch_op.drop_index("email_tasks_source_idx")
        batch_op.drop_index("email_tasks_run_idx")
        batch_op.drop_index("email_tasks_created_idx")
        batch_op.drop_index("email_tasks_completed_idx")

    op.drop_table("email_tasks")
    with op.batch_alter_table("email_messages", schema=None) as batch_op:
        batch_op.drop_index("email_messages_user_received_idx")
        batch_op.drop_index("email_messages_content_hash_idx")

    op.drop_table("email_messages")
    with op.batch_alter_table("email_aliases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_aliases_user_id"))

    op.drop_table("email_aliases")
    op.drop_table("users")
    op.drop_table("task_locks")
