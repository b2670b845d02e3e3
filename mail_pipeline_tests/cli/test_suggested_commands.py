"""Every ``mail-pipeline ...`` command the code or the docs suggest is one the CLI knows.

The suggestions are collected from every string literal in ``mail_pipeline/`` (error messages,
hints, log lines, docstrings), from ``scripts/`` and from the READMEs; each is checked against
the real argument parser: the command, its sub-command when the command has some, and every
``--option`` written after it.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

from mail_pipeline.cli.app import build_parser

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
    paths = [ROOT / "README.md", ROOT / "deploy" / "README.md", ROOT / "haraka" / "README.md",
             *sorted((ROOT / "scripts").glob("*"))]
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
            return f"no option {word} of {' '.join(words[:len(words) - len(rest)])}"
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
    wrong = [f"{where}: mail-pipeline {' '.join(words)}: {problem}"
             for where, words in suggestions() if (problem := _check(words))]
    assert wrong == []
