"""What the command modules share: argument types, the one-line error, the lazy store."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mail_pipeline.cli.common import (
    EXIT_USAGE,
    CommandParser,
    Context,
    command,
    group,
    positive_int,
    print_error,
    show_time,
)
from mail_pipeline.platform.settings import Settings


def test_positive_int() -> None:
    assert positive_int("3") == 3
    for text, needle in (
        ("0", "not a positive number"),
        ("-2", "not a positive number"),
        ("2.5", "not a whole number"),
        ("x", "not a whole number"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=needle):
            positive_int(text)


def test_show_time() -> None:
    assert show_time(None) == "-"
    assert show_time(datetime(2026, 11, 25, 12, 3, 4, 999, tzinfo=UTC)) == "2026-11-25 12:03:04"


def test_print_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    print_error("error: database:\n  connection   refused\n")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "mail-pipeline: error: database: connection refused\n"


def test_a_parser_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    parser = CommandParser(prog="mail-pipeline")
    sub = group(parser.add_subparsers(parser_class=CommandParser), "users", "users")
    add = command(sub, "add", lambda _ctx, _args: 0, "add a user")
    add.add_argument("username")
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["users", "add"])
    assert exc.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "(see --help)" in err
    assert parser.parse_args(["users", "add", "alice"]).handler(None, None) == 0


def test_the_context_opens_the_store_only_when_used(store_url: str, tmp_path: Path) -> None:
    def settings(url: str) -> Settings:
        return Settings(
            home=tmp_path,
            database_url=url,
            attachment_root=tmp_path / "a",
            spool_dir=tmp_path / "s",
        )

    unused = Context(settings("postgresql://nobody@127.0.0.1:1/none"))
    unused.close()  # never opened: nothing to release, no connection tried
    assert "store" not in unused.__dict__
    used = Context(settings(store_url))
    assert used.store is used.store and used.store.table_names()
    used.close()
