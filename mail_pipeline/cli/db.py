"""``mail-pipeline db``: create or migrate the store's schema, and show its revision."""

from __future__ import annotations

import click

from mail_pipeline.cli.common import EXIT_OK, Context, emit_json, group, json_option, pass_context


@group("db", "mail-pipeline db upgrade", "mail-pipeline db revision --json")
def db() -> None:
    """Create the store or bring its schema up to date."""


@db.command(short_help="Create the store or migrate its schema.")
@pass_context
def upgrade(ctx: Context) -> int:
    """Create the store (a SQLite file under MAIL_PIPELINE_HOME by default) or migrate its
    schema to the newest revision. Safe to run again: a store already up to date is left
    as it is."""
    store = ctx.create_store()
    store.upgrade()
    ctx.say(f"schema at revision {store.schema_revision()} ({store.dialect})")
    return EXIT_OK


@db.command(short_help="Print the store's schema revision.")
@json_option
@pass_context
def revision(ctx: Context, as_json: bool) -> int:
    """Print the store's schema revision ("none" before `mail-pipeline db upgrade`)."""
    ctx.require_project()
    store = ctx.create_store()
    current = store.schema_revision()
    if as_json:
        emit_json({"revision": current, "dialect": store.dialect})
    else:
        ctx.say(current or "none")
    return EXIT_OK


def register(root: click.Group) -> None:
    """Add the ``db`` group to ``root``."""
    root.add_command(db)
