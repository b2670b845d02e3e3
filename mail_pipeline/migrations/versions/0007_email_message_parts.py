"""The big parts of messages apart from their rows: email_message_parts.

A message of 1 MiB or more is inserted with an empty ``email_messages.raw_content`` and its
bytes are written, in pieces and in the same transaction, into a row of this table (``name``
``raw``); likewise an HTML or text body of 1 MiB or more (``html``, ``text``, UTF-8), so storing
a 25 MiB message no longer holds several copies of it in memory. Rows deleted from
email_messages take their parts with them (ON DELETE CASCADE). Existing rows are unchanged.
Downgrading puts every part back into its message's row.

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

#: part name -> the email_messages column it comes from
_PARTS = {"raw": "raw_content", "html": "html_content", "text": "text_content"}


def upgrade() -> None:
    op.create_table(
        "email_message_parts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=8), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["message_pk"], ["email_messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_pk", "name", name="uq_email_message_parts"),
    )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, column in _PARTS.items():
        value = "p.content"
        if name != "raw":  # UTF-8 bytes back to text
            value = "convert_from(p.content, 'UTF8')" if postgresql else "CAST(p.content AS TEXT)"
        op.execute(
            f"UPDATE email_messages SET {column} = (SELECT {value} FROM email_message_parts p "
            f"WHERE p.message_pk = email_messages.id AND p.name = '{name}') "
            f"WHERE id IN (SELECT message_pk FROM email_message_parts WHERE name = '{name}')"
        )
    op.drop_table("email_message_parts")
