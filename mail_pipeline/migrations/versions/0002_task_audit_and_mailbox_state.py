"""Retention audit and mailbox state: email_task_audit, mailbox_state.

``email_task_audit`` keeps a summary of every EmailTask that retention deleted (written in the
same transaction as the delete). ``mailbox_state`` holds each IMAP mailbox's last success,
failure streaks and the circuit breaker's pause.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_task_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=255), nullable=False),
        sa.Column("email_source", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("emails_fetched", sa.Integer(), nullable=False),
        sa.Column("emails_saved", sa.Integer(), nullable=False),
        sa.Column("emails_failed", sa.Integer(), nullable=False),
        sa.Column("emails_duplicate", sa.Integer(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("email_task_audit", schema=None) as batch_op:
        batch_op.create_index("email_task_audit_deleted_idx", ["deleted_at"], unique=False)
        batch_op.create_index("email_task_audit_task_idx", ["task_id"], unique=False)

    op.create_table(
        "mailbox_state",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("consecutive_auth_failures", sa.Integer(), nullable=False),
        sa.Column("last_error_kind", sa.String(length=20), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("paused_reason", sa.Text(), nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )


def downgrade() -> None:
    op.drop_table("mailbox_state")
    with op.batch_alter_table("email_task_audit", schema=None) as batch_op:
        batch_op.drop_index("email_task_audit_task_idx")
        batch_op.drop_index("email_task_audit_deleted_idx")
    op.drop_table("email_task_audit")
