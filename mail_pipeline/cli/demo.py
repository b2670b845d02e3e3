"""``mail-pipeline demo``: demo users and demo mail in the spool."""

from __future__ import annotations

import click

from mail_pipeline.cli.common import EXIT_OK, Context, examples, pass_context


@click.command(epilog=examples("MAIL_PIPELINE_HOME=/tmp/demo mail-pipeline demo"))
@pass_context
def demo(ctx: Context) -> int:
    """Set up the demo users and the demo mail.

    Creates the store, the users alice and bob (team@demo.test delivers to bob), and puts the
    five demo messages into the spool, as Haraka would. Running it again adds nothing that
    is already there.
    """
    from mail_pipeline.demo import install_demo

    report = install_demo(ctx.create_store(), ctx.settings.spool_dir)
    ctx.say(f"demo users added: {', '.join(report.users_added) or 'none (already there)'}")
    spool = ctx.settings.spool_dir
    if report.spooled:
        ctx.say(f"spooled {len(report.spooled)} demo messages into {spool}")
    if report.already_spooled:
        ctx.say(
            f"{len(report.already_spooled)} demo messages already in the spool {spool} "
            "or in the store: not spooled again"
        )
    return EXIT_OK


def register(root: click.Group) -> None:
    """Add the ``demo`` command to ``root``."""
    root.add_command(demo)
