"""``mail-pipeline users`` and ``mail-pipeline aliases``: who mail is stored for."""

from __future__ import annotations

import click

from mail_pipeline.cli.common import (
    EXIT_OK,
    Context,
    emit_json,
    group,
    iso_time,
    json_option,
    new_table,
    pass_context,
    state_text,
)


@group(
    "users",
    "mail-pipeline users add alice alice@example.org",
    "mail-pipeline users list --json",
    "mail-pipeline users disable alice",
)
def users() -> None:
    """The users mail is stored for.

    Each user has a name and an e-mail address; spool mail is delivered by address.
    """


@users.command("add", short_help="Add a user.")
@click.argument("username")
@click.argument("email")
@pass_context
def add_user(ctx: Context, username: str, email: str) -> int:
    """Add the user USERNAME whose address is EMAIL (stored lower-case)."""
    user = ctx.store.users.add(username, email)
    ctx.say(f"added user {user.username} <{user.email}>")
    return EXIT_OK


@users.command("list", short_help="List the users.")
@json_option
@pass_context
def list_users(ctx: Context, as_json: bool) -> int:
    """List every user with its address, whether it is active, and its stored messages."""
    store = ctx.store
    rows = [(user, store.messages.count(user.id)) for user in store.users.all()]
    if as_json:
        emit_json(
            [
                {
                    "id": user.id,
                    "username": user.username,
                    "email": user.email,
                    "active": user.is_active,
                    "messages": count,
                    "created_at": iso_time(user.created_at),
                }
                for user, count in rows
            ]
        )
        return EXIT_OK
    table = new_table("user", "email", "state", "messages", numbers=("messages",))
    for user, count in rows:
        table.add_row(
            user.username,
            user.email,
            state_text("active" if user.is_active else "disabled"),
            str(count),
        )
    ctx.print_table(table, "no users")
    return EXIT_OK


@users.command("disable", short_help="Disable a user (nothing is fetched or delivered).")
@click.argument("username")
@pass_context
def disable_user(ctx: Context, username: str) -> int:
    """Disable USERNAME: no mail is fetched or delivered for it until it is enabled again."""
    user = ctx.store.users.set_active(username, False)
    ctx.say(f"user {user.username} disabled")
    return EXIT_OK


@users.command("enable", short_help="Enable a user again.")
@click.argument("username")
@pass_context
def enable_user(ctx: Context, username: str) -> int:
    """Enable USERNAME again."""
    user = ctx.store.users.set_active(username, True)
    ctx.say(f"user {user.username} enabled")
    return EXIT_OK


@group(
    "aliases",
    "mail-pipeline aliases add bob team@example.org",
    "mail-pipeline aliases list bob",
    "mail-pipeline aliases remove team@example.org",
)
def aliases() -> None:
    """Extra addresses that deliver to a user.

    With an alias team@example.org for bob, spool mail to team@ is stored for bob.
    """


@aliases.command("add", short_help="Add an alias address for a user.")
@click.argument("username")
@click.argument("address")
@pass_context
def add_alias(ctx: Context, username: str, address: str) -> int:
    """Make mail to ADDRESS deliver to USERNAME."""
    alias = ctx.store.users.add_alias(username, address)
    ctx.say(f"{alias.email_address} now delivers to {alias.username}")
    return EXIT_OK


@aliases.command("list", short_help="List the aliases.")
@click.argument("username", required=False)
@json_option
@pass_context
def list_aliases(ctx: Context, username: str | None, as_json: bool) -> int:
    """List the aliases of USERNAME, or of every user."""
    found = ctx.store.users.list_aliases(username)
    if as_json:
        emit_json(
            [
                {"address": a.email_address, "username": a.username, "active": a.is_active}
                for a in found
            ]
        )
        return EXIT_OK
    table = new_table("address", "user", "state")
    for alias in found:
        table.add_row(
            alias.email_address,
            alias.username,
            state_text("active" if alias.is_active else "disabled"),
        )
    ctx.print_table(table, f"no aliases of {username}" if username else "no aliases")
    return EXIT_OK


@aliases.command("remove", short_help="Remove an alias.")
@click.argument("address")
@pass_context
def remove_alias(ctx: Context, address: str) -> int:
    """Remove the alias ADDRESS."""
    ctx.store.users.remove_alias(address)
    ctx.say(f"removed alias {address.strip().lower()}")
    return EXIT_OK


def register(root: click.Group) -> None:
    """Add the ``users`` and ``aliases`` groups to ``root``."""
    root.add_command(users)
    root.add_command(aliases)
