"""``mail-pipeline locks``: the lease locks (the fetch lock), listed and released."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from mail_pipeline.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Context,
    UsageError,
    command,
    group,
    show_time,
)


def register(groups: Any) -> None:
    """Add the ``locks`` commands."""
    lk = group(groups, "locks", "lease locks (the fetch lock)")
    command(lk, "list", list_locks, "every lease: holder run, expiry, live or expired")
    rel = command(
        lk, "release", release_lock, "release a lease whoever holds it (live ones need --force)"
    )
    rel.add_argument("name")
    rel.add_argument(
        "--force",
        action="store_true",
        help="release even a live lease (only when its run is surely dead)",
    )


def list_locks(ctx: Context, _args: argparse.Namespace) -> int:
    """Print every lease."""
    now = ctx.store.clock()
    table = Table("name", "state", "run", "owner", "acquired", "expires")
    for lease in ctx.store.locks.all():
        table.add_row(
            lease.name,
            "live" if lease.is_live(now) else "expired",
            lease.run_id or "-",
            lease.owner_info,
            show_time(lease.acquired_at),
            show_time(lease.expires_at),
        )
    ctx.out.print(table)
    return EXIT_OK


def release_lock(ctx: Context, args: argparse.Namespace) -> int:
    """Release a lease; a live one only with --force."""
    lease = ctx.store.locks.get(args.name)
    if lease is None:
        raise UsageError(f"no lease named {args.name!r}")
    if lease.is_live(ctx.store.clock()) and not args.force:
        ctx.err.print(
            f"mail-pipeline: {args.name} is held by run {lease.run_id or '-'} until "
            f"{show_time(lease.expires_at)}; check that run is dead, then add --force",
            markup=False,
            highlight=False,
        )
        return EXIT_FAILED
    ctx.store.locks.force_release(args.name)
    ctx.out.print(
        f"released {args.name} (was held by run {lease.run_id or '-'})",
        markup=False,
        highlight=False,
    )
    return EXIT_OK
