"""``mail-pipeline secret-key``: make the key file that seals IMAP passwords; say where the key
comes from."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mail_pipeline.cli.common import EXIT_OK, Context, command
from mail_pipeline.platform.secret_box import create_key_file


def register(groups: Any) -> None:
    """Add the ``secret-key`` command."""
    parser = command(
        groups,
        "secret-key",
        run_secret_key,
        "create the key file that seals IMAP passwords (mode 0600; an existing key is kept) "
        "and say where the key comes from",
    )
    parser.add_argument(
        "--file",
        type=Path,
        metavar="PATH",
        help="write the key to PATH (default: MAIL_PIPELINE_SECRET_KEY_FILE, else "
        "$MAIL_PIPELINE_HOME/secret.key)",
    )


def run_secret_key(ctx: Context, args: argparse.Namespace) -> int:
    """Create the key file if it has no key; print the file and the key's source.

    Returns:
        0; a file that cannot be written or read is a SecretKeyError (exit 2).
    """
    settings = ctx.settings

    def say(text: str) -> None:
        ctx.out.print(text, markup=False, highlight=False)

    if args.file is None and settings.secret_key_env:
        say("the key comes from MAIL_PIPELINE_SECRET_KEY (the environment): no file written")
        return EXIT_OK
    target = args.file.expanduser().absolute() if args.file is not None else settings.key_file
    if create_key_file(target):
        say(
            f"created key file {target} (mode 0600): back it up, stored IMAP passwords "
            f"cannot be opened without it"
        )
    else:
        say(f"key file {target} already holds a key: kept")
    source = settings.secret_key_source()
    if target != settings.key_file or settings.secret_key_env:
        say(
            f"note: the key in use comes from {source or 'nowhere'}; to use this file, set "
            f"MAIL_PIPELINE_SECRET_KEY_FILE={target}"
        )
    else:
        say(f"the key comes from {source}")
    return EXIT_OK
