"""The CLI app: every mistake is one line on stderr and exit code 2, never a traceback; the
parser knows every command the code or the docs suggest; no command module imports the app.

Suggested commands are collected from every string literal in ``mail_pipeline/`` (error
messages, hints, log lines, docstrings), from ``scripts/`` and from the READMEs; each is
checked against the real argument parser: the command, its sub-command when the command has
some, and every ``--option`` written after it.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

from mail_pipeline.cli.app import COMMAND_MODULES, build_parser
from mail_pipeline_tests.cli.conftest import Run

ROOT = Path(__file__).resolve().parents[2]
_WORD = r"[a-z][a-z0-9-]*(?![\w/.])"
SUGGESTION = re.compile(rf"(?<![\w/.-])mail-pipeline( {_WORD}(?: -{{0,2}}{_WORD})*)")


def _source_strings() -> list[tuple[str, str]]:
    """Return (where, text) for every string literal of the package (f-string parts too)."""
    found = []
    for path in sorted((ROOT / "mail_pipeline").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append((f"{path.relative_to(ROOT)}:{node.lineno}", node.value))
    return found


def _doc_texts() -> list[tuple[str, str]]:
    paths = [
        ROOT / "README.md",
        ROOT / "deploy" / "README.md",
        ROOT / "haraka" / "README.md",
        *sorted((ROOT / "scripts").glob("*")),
    ]
    return [(str(p.relative_to(ROOT)), p.read_text()) for p in paths if p.is_file()]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _check(words: list[str]) -> str | None:
    """Return what is wrong with ``mail-pipeline WORDS...``, or None when the CLI knows it."""
    parser = build_parser()
    commands = _subparsers(parser)
    if words[0] not in commands:
        return f"no command {words[0]!r}"
    parser = commands[words[0]]
    rest = words[1:]
    subcommands = _subparsers(parser)
    if subcommands and rest and not rest[0].startswith("-"):
        if rest[0] not in subcommands:
            return f"no sub-command {words[0]} {rest[0]!r}"
        parser, rest = subcommands[rest[0]], rest[1:]
    options = {o for a in parser._actions for o in a.option_strings}
    for word in rest:
        if word.startswith("-") and word not in options:
            return f"no option {word} of {' '.join(words[: len(words) - len(rest)])}"
        if not word.startswith("-"):
            break  # an argument such as a user name: the rest is not checked
    return None


def suggestions() -> list[tuple[str, list[str]]]:
    """Return (where, words after ``mail-pipeline``) of every suggested command."""
    found = []
    for where, text in _source_strings() + _doc_texts():
        for match in SUGGESTION.finditer(text):
            found.append((where, match.group(1).split()))
    return found


def test_the_scan_finds_the_commands_it_should() -> None:
    found = {" ".join(words[:2]) for _where, words in suggestions()}
    # Hints in the package that must be seen by the scan (a broken regex finds nothing):
    assert {"secret-key", "imap resume"} <= found, found


def test_every_suggested_command_exists() -> None:
    wrong = [
        f"{where}: mail-pipeline {' '.join(words)}: {problem}"
        for where, words in suggestions()
        if (problem := _check(words))
    ]
    assert wrong == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("users", "add", "bob", "not-an-address"), "not an e-mail address"),
        (("users", "disable", "nobody"), "no user"),
        (("aliases", "remove", "nobody@example.org"), "no alias"),
        (("aliases", "add", "nobody", "x@example.org"), "no user"),
        (("tasks", "show", "nope"), "no email task"),
        (("tasks", "list", "--limit", "0"), "--limit"),
        (("imap", "show", "nobody"), "no user"),
        (("users", "frobnicate"), "invalid choice"),
        (("users", "add", "only-one-arg"), "required"),
        (("tasks", "list", "--status", "DONE"), "invalid choice"),
        ((), "required"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(cli: Run, args: tuple[str, ...], needle: str) -> None:
    result = cli(*args)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert needle in lines[0]
    assert "Traceback" not in result.err


def test_help_exits_0(cli: Run) -> None:
    result = cli("--help")
    assert result.code == 0 and "users" in result.out


def _cli_imports(path: Path) -> set[str]:
    """Return the ``mail_pipeline.cli.*`` modules that the module at ``path`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "mail_pipeline.cli":
                found |= {f"mail_pipeline.cli.{alias.name}" for alias in node.names}
            elif node.module.startswith("mail_pipeline.cli."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mail_pipeline.cli.")}
    return found


def test_command_modules_import_only_the_common_module_not_the_app() -> None:
    package = ROOT / "mail_pipeline" / "cli"
    assert (package / "common.py").is_file()
    assert _cli_imports(package / "common.py") == set()
    circles = {
        path.name: sorted(imported)
        for path in sorted(package.glob("*.py"))
        if path.name not in ("__init__.py", "app.py")
        and "mail_pipeline.cli.app" in (imported := _cli_imports(path))
    }
    assert circles == {}
    # and the app registers every command module there is
    registered = {module.__name__.rsplit(".", 1)[1] for module in COMMAND_MODULES}
    assert registered == {p.stem for p in package.glob("*.py")} - {"__init__", "app", "common"}
