"""``mail-pipeline haraka``: run the repo's Haraka SMTP server against the spool."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import click

from mail_pipeline.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Context,
    UsageError,
    emit_json,
    group,
    json_option,
    pass_context,
)
from mail_pipeline.intake.limits import DEFAULT_MAX_MESSAGE_BYTES

#: How each field of HarakaConfig's problems (the keys of
#: mail_pipeline.intake.spool.haraka_config.FIELD_LABELS) is named in this command's
#: messages: the option of ``haraka start`` that sets it (the tests check the mapping covers
#: every field and that each option exists).
OPTION_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "domains": "--domain",
        "host": "--host",
        "port": "--port",
        "max_message_bytes": "--max-size",
    }
)
#: Where the domains come from when no --domain is given.
DOMAINS_ENV = "MAIL_PIPELINE_HARAKA_DOMAINS"


@group(
    "haraka",
    "mail-pipeline haraka start --domain example.org --port 2525",
    "mail-pipeline haraka status",
    "mail-pipeline haraka stop",
)
def haraka() -> None:
    """Run the repo's Haraka SMTP server against the spool.

    Haraka accepts mail for its domains and writes each message into the spool's inbox, where
    `mail-pipeline spool ingest` (or the spool sensor) stores it.
    """


def _runtime(ctx: Context) -> Path:
    return ctx.settings.home / "haraka-runtime"


@haraka.command("start", short_help="Start Haraka in the background.")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=2525, show_default=True, help="The SMTP port."
)
@click.option(
    "--domain",
    "domains",
    multiple=True,
    metavar="DOMAIN",
    help="Accept mail for DOMAIN (repeatable; default: $MAIL_PIPELINE_HARAKA_DOMAINS, "
    "comma-separated).",
)
@click.option(
    "--max-size",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_MESSAGE_BYTES,
    show_default=True,
    metavar="BYTES",
    help="The largest message accepted.",
)
@pass_context
def start_server(
    ctx: Context, host: str, port: int, domains: tuple[str, ...], max_size: int
) -> int:
    """Start Haraka in the background, writing to the project's spool directory."""
    from mail_pipeline.intake.problems import ConfigProblemError
    from mail_pipeline.intake.spool import haraka as haraka_server
    from mail_pipeline.intake.spool.haraka_config import HarakaConfig

    ctx.require_project()
    names = dict(OPTION_NAMES)
    if not domains:
        domains = tuple(d.strip() for d in os.environ.get(DOMAINS_ENV, "").split(",") if d.strip())
        names["domains"] = DOMAINS_ENV
    if not domains:
        raise UsageError(f"give --domain DOMAIN or set {DOMAINS_ENV}")
    try:
        config = HarakaConfig(
            spool_dir=ctx.settings.spool_dir,
            domains=domains,
            host=host,
            port=port,
            max_message_bytes=max_size,
            runtime_dir=_runtime(ctx),
        )
        process = haraka_server.start(config)
    except ConfigProblemError as exc:
        raise UsageError(exc.render(names)) from None
    ctx.say(
        f"Haraka listening on {process.host}:{process.port} (pid {process.pid}) for "
        f"{', '.join(config.domains)}; spool {config.spool_dir}"
    )
    return EXIT_OK


@haraka.command("stop", short_help="Stop Haraka.")
@pass_context
def stop_server(ctx: Context) -> int:
    """Stop the Haraka started by `mail-pipeline haraka start`."""
    from mail_pipeline.intake.spool import haraka as haraka_server

    stopped = haraka_server.stop(_runtime(ctx))
    ctx.say("Haraka stopped" if stopped else "Haraka was not running")
    return EXIT_OK


@haraka.command("status", short_help="Is Haraka running, and where.")
@json_option
@pass_context
def server_status(ctx: Context, as_json: bool) -> int:
    """Say whether Haraka runs, and where; exit 1 when it does not."""
    from mail_pipeline.intake.spool import haraka as haraka_server

    state = haraka_server.status(_runtime(ctx))
    if as_json:
        emit_json(state)
        return EXIT_OK if state["running"] else EXIT_FAILED
    if not state["running"]:
        ctx.say(f"Haraka is not running (log: {state['log']})")
        return EXIT_FAILED
    ctx.say(
        f"Haraka running, pid {state['pid']}, on {state['host']}:{state['port']} for "
        f"{', '.join(state['domains'])}; spool {state['spool_dir']}"
    )
    return EXIT_OK


def register(root: click.Group) -> None:
    """Add the ``haraka`` group to ``root``."""
    root.add_command(haraka)
