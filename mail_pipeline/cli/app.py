"""The ``mail-pipeline`` command: argument parsing and error handling.

Each command group lives in its own module (``users``, ``imap``, ``tasks`` ...) and registers
its sub-commands with its ``register``; what they share (the context, exit codes, parser
helpers) is :mod:`mail_pipeline.cli.common`. A command returns an exit code: 0 for success, 1
for an operational failure it reported (a login refused, a task failed); bad input (an unknown
user, a malformed address, a missing option) is one line on stderr and exit code 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from mail_pipeline.cli import (
    db,
    demo,
    haraka,
    imap,
    locks,
    mailbox,
    ops,
    secret_key,
    spool,
    tasks,
    users,
)
from mail_pipeline.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    CommandParser,
    Context,
    UsageError,
    print_error,
)
from mail_pipeline.errors import EnvironmentFault, MailPipelineError
from mail_pipeline.platform.settings import load_settings

#: The command modules, in the order their commands are listed in ``--help``.
COMMAND_MODULES = (db, users, imap, tasks, haraka, spool, demo, ops, mailbox, locks, secret_key)


def build_parser() -> argparse.ArgumentParser:
    """Return the full argument parser with every command group registered."""
    parser = CommandParser(prog="mail-pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=CommandParser)
    groups.required = True
    for module in COMMAND_MODULES:
        module.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    context: Context | None = None
    try:
        context = Context(load_settings())
        return int(args.handler(context, args))
    except EnvironmentFault as exc:  # disk full, read-only, ...: a failed run, not bad usage
        print_error(f"error: {exc}")
        return EXIT_FAILED
    except (UsageError, MailPipelineError, ValueError) as exc:
        print_error(f"error: {exc}")
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        print_error(f"error: database: {reason[0] if reason else type(exc).__name__}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130
    finally:
        if context is not None:
            context.close()
