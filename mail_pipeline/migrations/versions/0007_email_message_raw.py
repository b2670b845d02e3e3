"""The raw bytes of big messages apart from their rows: email_message_raw.

A message of 1 MiB or more is inserted with an empty ``email_messages.raw_content`` and its
bytes are written, in pieces and in the same transaction, into this table's one row for it, so
storing a 25 MiB message no longer holds several copies of it in memory. Rows deleted from
email_messages take their raw row with them (ON DELETE CASCADE). Existing rows are unchanged.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_message_raw",
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("raw_content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["message_pk"], ["email_messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("message_pk"),
    )


def downgrade() -> None:
    # Put the bytes back into their rows before the table goes.
    op.execute(
        "UPDATE email_messages SET raw_content = ("
        "SELECT r.raw_content FROM email_message_raw r WHERE r.message_pk = email_messages.id"
        ") WHERE id IN (SELECT message_pk FROM email_message_raw)"
    )
    op.drop_table("email_message_raw")
