"""``mail-pipeline locks``: the lease locks (the fetch lock), listed and released."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mail_pipeline.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Context,
    UsageError,
    emit_json,
    group,
    iso_time,
    json_option,
    new_table,
    pass_context,
    show_time,
    state_text,
)

if TYPE_CHECKING:
    from datetime import datetime

    from mail_pipeline.storage.store.locks import Lease


@group(
    "locks",
    "mail-pipeline locks list",
    "mail-pipeline locks release email_fetch",
    "mail-pipeline locks release email_fetch --force",
)
def locks() -> None:
    """The fetch lease: list it, release it.

    A fetch run holds the lease `email_fetch` while it works, so two runs never fetch at
    once. A lease left by a dead run expires by itself; release it sooner here.
    """


def lease_json(lease: Lease, now: datetime) -> dict[str, Any]:
    """Return ``lease`` as a JSON-ready dict (timestamps ISO 8601 with their zone)."""
    return {
        "name": lease.name,
        "live": lease.is_live(now),
        "run_id": lease.run_id,
        "owner": lease.owner_info,
        "acquired_at": iso_time(lease.acquired_at),
        "expires_at": iso_time(lease.expires_at),
    }


@locks.command("list", short_help="List the leases: holder run, expiry, live or not.")
@json_option
@pass_context
def list_locks(ctx: Context, as_json: bool) -> int:
    """List every lease: the run that holds it, when it expires, live or expired."""
    now = ctx.store.clock()
    leases = ctx.store.locks.all()
    if as_json:
        emit_json([lease_json(lease, now) for lease in leases])
        return EXIT_OK
    table = new_table("name", "state", "run", "owner", "acquired", "expires")
    for lease in leases:
        table.add_row(
            lease.name,
            state_text("live" if lease.is_live(now) else "expired"),
            lease.run_id or "-",
            lease.owner_info,
            show_time(lease.acquired_at),
            show_time(lease.expires_at),
        )
    ctx.print_table(table, "no locks")
    return EXIT_OK


@locks.command("release", short_help="Release a lease (a live one needs --force).")
@click.argument("name")
@click.option(
    "--force", is_flag=True, help="Release even a live lease (only when its run is surely dead)."
)
@pass_context
def release_lock(ctx: Context, name: str, force: bool) -> int:
    """Release the lease NAME whoever holds it; a live one only with --force."""
    lease = ctx.store.locks.get(name)
    if lease is None:
        raise UsageError(f"no lease named {name!r} (see mail-pipeline locks list)")
    if lease.is_live(ctx.store.clock()) and not force:
        ctx.warn(
            f"{name} is held by run {lease.run_id or '-'} until "
            f"{show_time(lease.expires_at)}; check that run is dead, then add --force"
        )
        return EXIT_FAILED
    ctx.store.locks.force_release(name)
    ctx.say(f"released {name} (was held by run {lease.run_id or '-'})")
    return EXIT_OK


def register(root: click.Group) -> None:
    """Add the ``locks`` group to ``root``."""
    root.add_command(locks)
