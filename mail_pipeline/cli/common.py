"""What every ``mail-pipeline`` command module shares: exit codes, the context, parser helpers.

Command modules (``users``, ``imap``, ``tasks`` ...) import only this module;
:mod:`mail_pipeline.cli.app` imports the command modules, assembles the parser and runs
``main``, so no command module imports the app. A command returns an exit code: 0 for
success, 1 for an operational failure it reported (a login refused, a task failed); bad input
(an unknown user, a malformed address, a missing option) is one line on stderr and exit code
2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, NoReturn

from rich.console import Console

from mail_pipeline.platform.settings import Settings
from mail_pipeline.storage.store import MailStore

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Handler = Callable[["Context", argparse.Namespace], int]


class UsageError(Exception):
    """Bad input on the command line: reported as one line, exit code 2."""


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as one line and exit with :data:`EXIT_USAGE` (never returns)."""
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


def command(sub: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
    """Add sub-command ``name`` to ``sub`` (an argparse subparsers object) running ``handler``.

    Returns:
        The sub-command's parser, to add its arguments to.
    """
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser


def group(groups: Any, name: str, help_text: str) -> Any:
    """Add a command group and return its subparsers object."""
    parser = groups.add_parser(name, help=help_text, description=help_text)
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=CommandParser)
    sub.required = True
    return sub


def positive_int(text: str) -> int:
    """An argparse type: return ``text`` as a whole number of at least 1.

    Raises:
        argparse.ArgumentTypeError: not a whole number, or below 1 (a usage error).
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def show_time(value: datetime | None) -> str:
    """Return ``value`` as ``YYYY-MM-DD HH:MM:SS``, or ``-`` for None (tables and lines)."""
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def print_error(text: str) -> None:
    """Print ``text`` to stderr as one ``mail-pipeline: ...`` line (whitespace collapsed)."""
    print(f"mail-pipeline: {' '.join(text.split())}", file=sys.stderr)
