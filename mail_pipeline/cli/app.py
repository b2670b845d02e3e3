"""The ``mail-pipeline`` command: argument parsing, error handling and shared context.

Each command group lives in its own module (``users``, ``imap``, ``tasks`` ...) and registers
its sub-commands with :func:`register`. A command returns an exit code: 0 for success, 1 for
an operational failure it reported (a login refused, a task failed); bad input (an unknown
user, a malformed address, a missing option) is one line on stderr and exit code 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NoReturn

from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from mail_pipeline.errors import EnvironmentFault, MailPipelineError
from mail_pipeline.platform.settings import Settings, load_settings
from mail_pipeline.storage.store import MailStore

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Handler = Callable[["Context", argparse.Namespace], int]


class UsageError(Exception):
    """Bad input on the command line: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


@dataclass
class Context:
    """What every command gets: settings, the store (opened lazily), and the terminal."""

    settings: Settings
    out: Console = field(default_factory=lambda: Console(soft_wrap=True))
    err: Console = field(default_factory=lambda: Console(stderr=True, soft_wrap=True))

    @cached_property
    def store(self) -> MailStore:
        """The store named by the settings."""
        return MailStore(self.settings.database_url)

    def close(self) -> None:
        """Release the store's connections, if it was opened."""
        if "store" in self.__dict__:
            self.store.dispose()


def build_parser() -> argparse.ArgumentParser:
    """Return the full argument parser with every command group registered."""
    from mail_pipeline.cli import db, demo, haraka, imap, ops, secret_key, spool, tasks, users

    parser = _Parser(prog="mail-pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=_Parser)
    groups.required = True
    for module in (db, users, imap, tasks, haraka, spool, demo, ops, secret_key):
        module.register(groups)
    return parser


def command(sub: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
    """Add sub-command ``name`` to ``sub`` (an argparse subparsers object) running ``handler``."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser


def group(groups: Any, name: str, help_text: str) -> Any:
    """Add a command group and return its subparsers object."""
    parser = groups.add_parser(name, help=help_text, description=help_text)
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=_Parser)
    sub.required = True
    return sub


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a usage error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


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
        _one_line(f"error: {exc}")
        return EXIT_FAILED
    except (UsageError, MailPipelineError, ValueError) as exc:
        _one_line(f"error: {exc}")
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        _one_line(f"error: database: {reason[0] if reason else type(exc).__name__}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _one_line("interrupted")
        return 130
    finally:
        if context is not None:
            context.close()


def _one_line(text: str) -> None:
    print(f"mail-pipeline: {' '.join(text.split())}", file=sys.stderr)
