"""Mailbox state keeps since when a mailbox has been failing: mailbox_state.failing_since.

The first failed fetch of a streak sets it and a successful fetch clears it, so an operator
sees how long a mailbox has been failing (``mailbox`` asset check in the Dagster UI). A mailbox
already failing when this runs starts from its last failure (the streak may be older).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailbox_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE mailbox_state SET failing_since = last_failure_at WHERE consecutive_failures > 0"
    )


def downgrade() -> None:
    with op.batch_alter_table("mailbox_state", schema=None) as batch_op:
        batch_op.drop_column("failing_since")
