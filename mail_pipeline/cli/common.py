"""What every ``mail-pipeline`` command module shares: exit codes, the context, output helpers.

Command modules (``users``, ``imap``, ``tasks`` ...) import only this module;
:mod:`mail_pipeline.cli.app` imports the command modules, assembles the ``mail-pipeline``
group and runs ``main``, so no command module imports the app. A command returns an exit code:
0 for success, 1 for an operational failure it reported (a login refused, a task failed); bad
input (an unknown user, a malformed address, a missing option) is one line on stderr and exit
code 2, never a traceback.

This module imports only the standard library and Click: ``mail-pipeline --help`` must start
fast, so the settings loader, rich, the store (SQLAlchemy) and everything else are imported
where they are first needed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from mail_pipeline.platform.settings import Settings
    from mail_pipeline.storage.store import MailStore

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

F = TypeVar("F", bound=Callable[..., Any])

#: Click settings shared by every group and command: ``-h`` as well as ``--help``.
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: The width of tables written to a pipe or a file (COLUMNS, when set, wins).
WIDE_OUTPUT = 240

#: Styles of the states the CLI prints (tasks, mailboxes, leases, health), on a terminal only.
STATE_STYLES = {
    "FAILED": "bold red",
    "CRITICAL": "bold red",
    "PAUSED": "yellow",
    "WARNING": "yellow",
    "expired": "yellow",
    "RUNNING": "cyan",
    "PENDING": "blue",
    "COMPLETED": "green",
    "HEALTHY": "green",
    "active": "green",
    "live": "green",
    "CANCELLED": "magenta",
    "SKIPPED": "dim",
}


class UsageError(Exception):
    """Bad input on the command line: reported as one line, exit code 2."""


class ProjectNotFound(UsageError):
    """The command runs outside a project: no store where the settings point (exit code 2)."""


class Context:
    """What every command gets: the settings, the store (both read when first used), and the
    console for results (rich decides colours and width by whether it is a terminal);
    problems go to stderr as one line each (:meth:`warn`)."""

    def __init__(self, settings: Settings | None = None) -> None:
        """``settings`` default to :func:`~mail_pipeline.platform.settings.load_settings`,
        read when a command first needs them."""
        if settings is not None:
            self.__dict__["settings"] = settings

    @cached_property
    def settings(self) -> Settings:
        """The settings from the environment.

        Raises:
            ConfigError: a setting is invalid.
        """
        from mail_pipeline.platform.settings import load_settings

        return load_settings()

    @cached_property
    def out(self) -> Console:
        """The console for results (stdout)."""
        from rich.console import Console

        console = Console(highlight=False)
        if not console.is_terminal and not os.environ.get("COLUMNS"):
            # A pipe or a file: one table row per line, never folded to 80 columns.
            console.width = WIDE_OUTPUT
        return console

    @cached_property
    def store(self) -> MailStore:
        """The project's store, which must exist with its schema.

        Raises:
            ProjectNotFound: no store where the settings point (nothing is created), or a
                database without the schema.
        """
        from mail_pipeline.storage.store import MailStore

        self.require_project()
        store = MailStore(self.settings.database_url)
        if store.schema_revision() is None:
            store.dispose()
            raise ProjectNotFound(
                f"the database {self._where()} has no mail_pipeline schema yet: create it with "
                "`mail-pipeline db upgrade`"
            )
        return store

    def create_store(self) -> MailStore:
        """Return the store, creating its SQLite file and folder when missing (``db upgrade``,
        ``demo``); the caller upgrades the schema."""
        from mail_pipeline.storage.store import MailStore

        if "store" not in self.__dict__:
            self.__dict__["store"] = MailStore(self.settings.database_url)
        store: MailStore = self.__dict__["store"]
        return store

    def require_project(self) -> None:
        """Check that the settings point to a store that exists, without creating anything.

        Raises:
            ProjectNotFound: the SQLite file of the store does not exist; the one line says
                where it was looked for, MAIL_PIPELINE_HOME and ``mail-pipeline db upgrade``.
        """
        path = sqlite_path(self.settings.database_url)
        if path is None or path.exists():
            return
        home = (
            f"MAIL_PIPELINE_HOME={os.environ['MAIL_PIPELINE_HOME']}"
            if os.environ.get("MAIL_PIPELINE_HOME")
            else "MAIL_PIPELINE_HOME is not set, so the home is ./var"
        )
        raise ProjectNotFound(
            f"no mail_pipeline store at {path} ({home}): run this in the project's folder, "
            "set MAIL_PIPELINE_HOME to the project's home, or create a store there with "
            "`mail-pipeline db upgrade`"
        )

    def _where(self) -> str:
        path = sqlite_path(self.settings.database_url)
        if path is not None:
            return str(path)
        from sqlalchemy.engine import make_url

        return make_url(self.settings.database_url).render_as_string(hide_password=True)

    def close(self) -> None:
        """Release the store's connections, if it was opened."""
        if "store" in self.__dict__:
            self.__dict__["store"].dispose()

    # --- output ----------------------------------------------------------------------------

    def say(self, text: str | Text = "") -> None:
        """Print one result line as it is (no rich markup, no highlighting)."""
        self.out.print(text, markup=False, highlight=False, soft_wrap=True)

    def warn(self, text: str) -> None:
        """Print one ``mail-pipeline: TEXT`` line on stderr (whitespace collapsed)."""
        print_error(text)

    def print_table(self, rows: Rows, empty: str) -> None:
        """Print ``rows`` as a table when it fits the console whole, else as blocks (see
        :class:`Rows`); the line ``empty`` (such as "no users") when there is no row."""
        if not rows.row_count:
            self.say(empty)
        elif rows.width() <= self.out.width:
            self.out.print(rows.table())
        else:
            for line in rows.blocks():
                self.say(line)


pass_context = click.make_pass_decorator(Context)


class OrderedGroup(click.Group):
    """A group that lists its commands in the order they were added (not alphabetically)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Return the command names in the order they were registered."""
        return list(self.commands)


def examples(*lines: str) -> str:
    """Return an epilog of example command lines, kept as written by ``--help``."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def group(name: str, *lines: str) -> Callable[[Callable[..., Any]], click.Group]:
    """Return a decorator making a command group ``name`` with the example ``lines``; the
    group without a command is a usage error (one line, exit 2)."""
    return click.group(name, cls=OrderedGroup, no_args_is_help=False, epilog=examples(*lines))


def json_option(function: F) -> F:
    """Add ``--json`` (stored as ``as_json``) to a read command."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print JSON for scripts instead (timestamps in ISO 8601 with their zone).",
    )(function)


def sqlite_path(url: str) -> Path | None:
    """Return the absolute file of a SQLite database URL, or None for any other database
    (or an in-memory SQLite)."""
    scheme, _, rest = url.partition("://")
    if not scheme.startswith("sqlite") or not rest.startswith("/"):
        return None
    name = rest[1:].split("?", 1)[0]
    if name in ("", ":memory:"):
        return None
    return Path(name).expanduser().absolute()


def utc(value: datetime) -> datetime:
    """Return ``value`` in UTC (a naive value is taken as UTC, as the store writes it)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def show_time(value: datetime | str | None) -> str:
    """Return ``value`` as ``YYYY-MM-DD HH:MM:SS UTC`` (no microseconds), ``-`` for None.

    A string is parsed as ISO 8601 first (the execution log's timestamps); one that is not is
    returned unchanged.
    """
    if value is None:
        return "-"
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        when = value
    return utc(when).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_time(value: datetime | None) -> str | None:
    """Return ``value`` in ISO 8601 with its zone (UTC), or None."""
    return None if value is None else utc(value).isoformat()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (datetimes in ISO 8601 with their zone)."""
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def state_text(state: str) -> Text:
    """Return ``state`` (``FAILED``, ``PAUSED since ...``, ``live`` ...) styled by its first
    word; the style shows only on a terminal."""
    from rich.text import Text

    word = state.split(" ", 1)[0]
    return Text(state, style=STATE_STYLES.get(word, ""))


class Rows:
    """Rows to print under column headers: a table when every cell fits whole on the console
    (nothing is folded or cut to an ellipsis), else one block per row, its first cell on a
    line of its own and the others as ``header: value`` after it, so a task ID, a run ID or
    an error is never shortened whatever the width."""

    #: the space between two columns: padding, the (blank) divider, padding
    GAP = 3

    def __init__(
        self, *headers: str, numbers: tuple[str, ...] = (), title: str | None = None
    ) -> None:
        """``numbers``: the headers of right-aligned columns."""
        self.headers = headers
        self.numbers = numbers
        self.title = title
        self.rows: list[tuple[str | Text, ...]] = []

    def add_row(self, *cells: str | Text) -> None:
        """Add one row (a cell per header)."""
        if len(cells) != len(self.headers):
            raise ValueError(f"{len(cells)} cells for {len(self.headers)} columns")
        self.rows.append(cells)

    @property
    def row_count(self) -> int:
        """How many rows there are."""
        return len(self.rows)

    def width(self) -> int:
        """The width the table needs for every cell whole (three spaces between columns)."""
        widths = [
            max([len(header), *(len(str(row[i])) for row in self.rows)])
            for i, header in enumerate(self.headers)
        ]
        return sum(widths) + self.GAP * (len(widths) - 1)

    def table(self) -> Table:
        """Return the rows as a rich table whose cells never wrap (see :meth:`width`)."""
        from rich import box
        from rich.table import Table

        table = Table(title=self.title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for header in self.headers:
            table.add_column(
                header, justify="right" if header in self.numbers else "left", no_wrap=True
            )
        for row in self.rows:
            table.add_row(*row)
        return table

    def blocks(self) -> list[Text]:
        """Return the rows as lines for a narrow console: the first cell, then the others."""
        from rich.text import Text

        lines = [Text(self.title, style="italic")] if self.title else []
        for first, *rest in self.rows:
            lines.append(Text(first) if isinstance(first, str) else first)
            line = Text("   ")
            for header, cell in zip(self.headers[1:], rest, strict=True):
                line.append(f" {header}: ")
                line.append(cell)
            lines.append(line)
        return lines


def new_table(*headers: str, numbers: tuple[str, ...] = (), title: str | None = None) -> Rows:
    """Return empty :class:`Rows` with these column ``headers`` (``numbers`` right-aligned)."""
    return Rows(*headers, numbers=numbers, title=title)


def print_error(text: str) -> None:
    """Print ``text`` to stderr as one ``mail-pipeline: ...`` line (whitespace collapsed)."""
    print(f"mail-pipeline: {' '.join(text.split())}", file=sys.stderr)
