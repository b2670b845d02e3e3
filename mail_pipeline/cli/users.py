"""``mail-pipeline users`` and ``mail-pipeline aliases``."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from mail_pipeline.cli.common import EXIT_OK, Context, command, group


def register(groups: Any) -> None:
    """Add the ``users`` and ``aliases`` commands."""
    sub = group(groups, "users", "users of the service")
    add = command(sub, "add", add_user, "add a user")
    add.add_argument("username")
    add.add_argument("email")
    command(sub, "list", list_users, "list users")
    disable = command(sub, "disable", lambda c, a: set_active(c, a, False), "disable a user")
    disable.add_argument("username")
    enable = command(sub, "enable", lambda c, a: set_active(c, a, True), "enable a user")
    enable.add_argument("username")

    sub = group(groups, "aliases", "extra addresses that deliver to a user")
    add = command(sub, "add", add_alias, "add an alias address for a user")
    add.add_argument("username")
    add.add_argument("address")
    lst = command(sub, "list", list_aliases, "list aliases")
    lst.add_argument("username", nargs="?")
    rm = command(sub, "remove", remove_alias, "remove an alias")
    rm.add_argument("address")


def add_user(ctx: Context, args: argparse.Namespace) -> int:
    """Create a user."""
    user = ctx.store.users.add(args.username, args.email)
    ctx.out.print(f"added user {user.username} <{user.email}> (id {user.id})")
    return EXIT_OK


def list_users(ctx: Context, _args: argparse.Namespace) -> int:
    """Print every user."""
    table = Table("id", "username", "email", "active", "messages")
    for user in ctx.store.users.all():
        table.add_row(
            str(user.id),
            user.username,
            user.email,
            "yes" if user.is_active else "no",
            str(ctx.store.messages.count(user.id)),
        )
    ctx.out.print(table)
    return EXIT_OK


def set_active(ctx: Context, args: argparse.Namespace, active: bool) -> int:
    """Enable or disable a user."""
    user = ctx.store.users.set_active(args.username, active)
    ctx.out.print(f"user {user.username} {'enabled' if active else 'disabled'}")
    return EXIT_OK


def add_alias(ctx: Context, args: argparse.Namespace) -> int:
    """Add an alias."""
    alias = ctx.store.users.add_alias(args.username, args.address)
    ctx.out.print(f"{alias.email_address} now delivers to {alias.username}")
    return EXIT_OK


def list_aliases(ctx: Context, args: argparse.Namespace) -> int:
    """Print aliases, of one user or all."""
    table = Table("address", "user", "active")
    for alias in ctx.store.users.list_aliases(args.username):
        table.add_row(alias.email_address, alias.username, "yes" if alias.is_active else "no")
    ctx.out.print(table)
    return EXIT_OK


def remove_alias(ctx: Context, args: argparse.Namespace) -> int:
    """Delete an alias."""
    ctx.store.users.remove_alias(args.address)
    ctx.out.print(f"removed alias {args.address.strip().lower()}")
    return EXIT_OK
