"""``mail-pipeline secret-key``: make the key file that seals IMAP passwords; say where the key
comes from."""

from __future__ import annotations

from pathlib import Path

import click

from mail_pipeline.cli.common import EXIT_OK, Context, examples, pass_context


@click.command(
    "secret-key",
    epilog=examples(
        "mail-pipeline secret-key", "mail-pipeline secret-key --file /etc/mail_pipeline/secret.key"
    ),
)
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Write the key to PATH (default: MAIL_PIPELINE_SECRET_KEY_FILE, else "
    "$MAIL_PIPELINE_HOME/secret.key).",
)
@pass_context
def secret_key(ctx: Context, path: Path | None) -> int:
    """Create the key file that seals IMAP passwords.

    The file gets mode 0600; a file that already holds a key is never overwritten. Then says
    where the key in use comes from.

    Back the file up: stored IMAP passwords cannot be opened without it.
    """
    from mail_pipeline.platform.secret_box import create_key_file

    settings = ctx.settings
    if path is None and settings.secret_key_env:
        ctx.say("the key comes from MAIL_PIPELINE_SECRET_KEY (the environment): no file written")
        return EXIT_OK
    target = path.expanduser().absolute() if path is not None else settings.key_file
    if create_key_file(target):
        ctx.say(
            f"created key file {target} (mode 0600): back it up, stored IMAP passwords "
            f"cannot be opened without it"
        )
    else:
        ctx.say(f"key file {target} already holds a key: kept")
    source = settings.secret_key_source()
    if target != settings.key_file or settings.secret_key_env:
        ctx.say(
            f"note: the key in use comes from {source or 'nowhere'}; to use this file, set "
            f"MAIL_PIPELINE_SECRET_KEY_FILE={target}"
        )
    else:
        ctx.say(f"the key comes from {source}")
    return EXIT_OK


def register(root: click.Group) -> None:
    """Add the ``secret-key`` command to ``root``."""
    root.add_command(secret_key)
