"""``mail-pipeline haraka``: run the repo's Haraka SMTP server against the spool."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from mail_pipeline.cli.common import EXIT_FAILED, EXIT_OK, Context, UsageError, command, group
from mail_pipeline.intake.limits import DEFAULT_MAX_MESSAGE_BYTES
from mail_pipeline.intake.spool import haraka as haraka_server
from mail_pipeline.intake.spool.haraka_config import HarakaConfig


def register(groups: Any) -> None:
    """Add the ``haraka`` commands."""
    sub = group(groups, "haraka", "the Haraka SMTP server that writes the spool")
    start = command(
        sub, "start", start_server, "start Haraka in the background, writing to the spool directory"
    )
    start.add_argument("--host", default="127.0.0.1")
    start.add_argument("--port", type=int, default=2525)
    start.add_argument(
        "--domain",
        action="append",
        dest="domains",
        metavar="DOMAIN",
        help="accept mail for DOMAIN (repeatable; default: "
        "$MAIL_PIPELINE_HARAKA_DOMAINS, comma-separated)",
    )
    start.add_argument(
        "--max-size",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="largest message accepted, in bytes",
    )
    for name, handler, text in (
        ("stop", stop_server, "stop Haraka"),
        ("status", server_status, "is Haraka running, and where"),
    ):
        command(sub, name, handler, text)


def _runtime(ctx: Context) -> Path:
    return ctx.settings.home / "haraka-runtime"


def start_server(ctx: Context, args: argparse.Namespace) -> int:
    """Start Haraka with the repo's config against the configured spool."""
    domains = args.domains or [
        d for d in os.environ.get("MAIL_PIPELINE_HARAKA_DOMAINS", "").split(",") if d.strip()
    ]
    if not domains:
        raise UsageError("give --domain DOMAIN or set MAIL_PIPELINE_HARAKA_DOMAINS")
    config = HarakaConfig(
        spool_dir=ctx.settings.spool_dir,
        domains=tuple(domains),
        host=args.host,
        port=args.port,
        max_message_bytes=args.max_size,
        runtime_dir=_runtime(ctx),
    )
    process = haraka_server.start(config)
    ctx.out.print(
        f"Haraka listening on {process.host}:{process.port} (pid {process.pid}) for "
        f"{', '.join(config.domains)}; spool {config.spool_dir}"
    )
    return EXIT_OK


def stop_server(ctx: Context, _args: argparse.Namespace) -> int:
    """Stop the Haraka started by ``haraka start``."""
    stopped = haraka_server.stop(_runtime(ctx))
    ctx.out.print("Haraka stopped" if stopped else "Haraka was not running")
    return EXIT_OK


def server_status(ctx: Context, _args: argparse.Namespace) -> int:
    """Print whether Haraka runs; exit 1 when it does not."""
    state = haraka_server.status(_runtime(ctx))
    if not state["running"]:
        ctx.out.print(f"Haraka is not running (log: {state['log']})")
        return EXIT_FAILED
    ctx.out.print(
        f"Haraka running, pid {state['pid']}, on {state['host']}:{state['port']} for "
        f"{', '.join(state['domains'])}; spool {state['spool_dir']}"
    )
    return EXIT_OK
