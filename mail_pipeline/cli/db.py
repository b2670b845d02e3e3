"""``mail-pipeline db``: create or migrate the store's schema."""

from __future__ import annotations

import argparse
from typing import Any

from mail_pipeline.cli.common import EXIT_OK, Context, command, group


def register(groups: Any) -> None:
    """Add the ``db`` commands."""
    sub = group(groups, "db", "the store's schema")
    command(sub, "upgrade", upgrade, "create the schema or migrate it to the newest revision")
    command(sub, "revision", revision, "print the schema revision of the store")


def upgrade(ctx: Context, _args: argparse.Namespace) -> int:
    """Run the Alembic migrations up to head."""
    ctx.store.upgrade()
    ctx.out.print(f"schema at revision {ctx.store.schema_revision()} ({ctx.store.dialect})")
    return EXIT_OK


def revision(ctx: Context, _args: argparse.Namespace) -> int:
    """Print the current schema revision ("none" for an empty database)."""
    ctx.out.print(ctx.store.schema_revision() or "none")
    return EXIT_OK
