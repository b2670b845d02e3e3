"""Mailbox state keeps what the last fetch did: messages fetched, saved, duplicates, failed,
seconds, and the run that fetched it.

The shard steps of a fetch run record every mailbox's outcome here, so an operator sees each
mailbox's last fetch without opening the run. Existing rows start at zero.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COUNTS = ("last_fetched", "last_saved", "last_duplicates", "last_failed")


def upgrade() -> None:
    with op.batch_alter_table("mailbox_state", schema=None) as batch_op:
        for name in _COUNTS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("last_seconds", sa.Float(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("last_run_id", sa.String(64), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("mailbox_state", schema=None) as batch_op:
        for name in (*_COUNTS, "last_seconds", "last_run_id"):
            batch_op.drop_column(name)
