"""``mail-pipeline demo``: demo users and demo mail in the spool."""

from __future__ import annotations

import argparse
from typing import Any

from mail_pipeline.cli.common import EXIT_OK, Context, command
from mail_pipeline.demo import install_demo


def register(groups: Any) -> None:
    """Add the ``demo`` command."""
    command(
        groups,
        "demo",
        run_demo,
        "create the store, the demo users (alice, bob) and spool the demo messages",
    )


def run_demo(ctx: Context, _args: argparse.Namespace) -> int:
    """Install the demo."""
    report = install_demo(ctx.store, ctx.settings.spool_dir)
    ctx.out.print(f"demo users added: {', '.join(report.users_added) or 'none (already there)'}")
    ctx.out.print(f"spooled {len(report.spooled)} demo messages into {ctx.settings.spool_dir}")
    return EXIT_OK
