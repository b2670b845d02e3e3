"""Task heartbeat: email_tasks.heartbeat_at.

The live run renews the heartbeat of its open tasks; stale-task cleanup closes a task whose
heartbeat is older than its ``timeout_seconds``. Existing rows start from their
``updated_at``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("email_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE email_tasks SET heartbeat_at = updated_at")
    with op.batch_alter_table("email_tasks", schema=None) as batch_op:
        batch_op.alter_column(
            "heartbeat_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("email_tasks", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
