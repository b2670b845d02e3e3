"""The CLI app: every mistake is one line on stderr and exit code 2, never a traceback; the
Click group knows every command the code or the docs suggest; no command module imports the
app; ``--help`` needs none of the heavy modules; outside a project nothing is created.

Suggested commands are collected from every string literal in ``mail_pipeline/`` (error
messages, hints, log lines, docstrings), from ``scripts/`` and from the READMEs; each is
checked against the real command tree: the command, its sub-command when the command has
some, and every ``--option`` written after it.
"""

from __future__ import annotations

import ast
import json
import re
from importlib.metadata import version
from pathlib import Path

import click
import pytest

from mail_pipeline.cli.app import COMMAND_MODULES, cli
from mail_pipeline_tests.cli.conftest import Run, clean_environ, run_installed

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


def _options(command: click.Command) -> set[str]:
    found = {"-h", "--help"}
    for param in command.params:
        if isinstance(param, click.Option):
            found |= set(param.opts) | set(param.secondary_opts)
    return found


def _check(words: list[str]) -> str | None:
    """Return what is wrong with ``mail-pipeline WORDS...``, or None when the CLI knows it."""
    if words[0].startswith("-"):
        return None if words[0] in _options(cli) else f"no option {words[0]}"
    if words[0] not in cli.commands:
        return f"no command {words[0]!r}"
    command: click.Command = cli.commands[words[0]]
    rest = words[1:]
    if isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        if rest[0] not in command.commands:
            return f"no sub-command {words[0]} {rest[0]!r}"
        command, rest = command.commands[rest[0]], rest[1:]
    options = _options(command)
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
    assert {"secret-key", "imap resume", "db upgrade"} <= found, found


def test_every_suggested_command_exists() -> None:
    wrong = [
        f"{where}: mail-pipeline {' '.join(words)}: {problem}"
        for where, words in suggestions()
        if (problem := _check(words))
    ]
    assert wrong == []


def test_the_check_itself_finds_what_does_not_exist() -> None:
    assert _check(["tasks", "show", "x"]) is None
    assert _check(["tasks", "frob"]) == "no sub-command tasks 'frob'"
    assert _check(["tasks", "list", "--nope"]) == "no option --nope of tasks list"
    assert _check(["nope"]) == "no command 'nope'"


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
        (("users", "frobnicate"), "No such command 'frobnicate'"),
        (("users", "add", "only-one-arg"), "Missing argument 'EMAIL'"),
        (("tasks", "list", "--status", "DONE"), "'DONE' is not one of"),
        (("tasks", "list", "--frob"), "No such option"),
        ((), "a command is missing"),
        (("users",), "a command is missing; one of: add, list, disable, enable"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(cli: Run, args: tuple[str, ...], needle: str) -> None:
    result = cli(*args)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert needle in lines[0]
    assert lines[0].startswith("mail-pipeline: error: ")
    assert "Traceback" not in result.err


#: A command's short help cut by Click ("  users   The users mail is stored...").
CUT = re.compile(r"^  \S+ +.*[^.]\.\.\.$", re.M)


def test_help_is_written_for_users_with_examples(cli: Run) -> None:
    result = cli("--help")
    assert result.code == 0 and "users" in result.out and "Examples:" in result.out
    assert not CUT.findall(result.out)  # every short help fits on its line
    for name, command in cli_commands():
        shown = cli(*name.split(), "--help")
        assert shown.code == 0, name
        if isinstance(command, click.Group):
            assert "Examples:" in shown.out, name
            assert not CUT.findall(shown.out), name
        assert ":param" not in shown.out and "Raises:" not in shown.out, name


def cli_commands() -> list[tuple[str, click.Command]]:
    """Every command and group below ``mail-pipeline``, as (words, command)."""
    found: list[tuple[str, click.Command]] = []
    for name, command in cli.commands.items():
        found.append((name, command))
        if isinstance(command, click.Group):
            found += [(f"{name} {sub}", c) for sub, c in command.commands.items()]
    return found


def test_version_is_the_package_version(cli: Run) -> None:
    result = cli("--version")
    assert (result.code, result.out) == (0, f"mail-pipeline {version('mail_pipeline')}\n")


def test_every_read_command_has_json() -> None:
    reads = [name for name, _c in cli_commands() if name.split()[-1] in ("list", "show", "status")]
    reads += ["metrics", "health", "db revision", "imap test"]
    missing = [name for name in reads if "--json" not in _options(dict(cli_commands())[name])]
    assert missing == []


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


HEAVY = ("dagster", "sqlalchemy", "flanker", "alembic", "pydantic", "rich", "mail_pipeline.storage")


def test_help_imports_no_heavy_module(tmp_path: Path) -> None:
    """``import mail_pipeline.cli`` and ``mail-pipeline --help`` load none of the heavy modules
    (a correctness check of the lazy imports; the time is measured by bench/cli_startup.py)."""
    code = (
        "import sys, json, contextlib, io\n"
        "import mail_pipeline.cli\n"
        "imported = set(sys.modules)\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = mail_pipeline.cli.main(['--help'])\n"
        "seen = {'import': sorted(imported), 'help': sorted(sys.modules), 'code': code}\n"
        "print(json.dumps(seen))\n"
    )
    result = run_installed(cwd=tmp_path, python=code)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["code"] == 0
    for phase in ("import", "help"):
        loaded = [m for m in data[phase] if m.split(".")[0] in HEAVY or m.startswith(HEAVY)]
        assert loaded == [], (phase, loaded)


@pytest.mark.parametrize(
    "args",
    [
        ("users", "list"),
        ("tasks", "list"),
        ("tasks", "show", "abc"),
        ("locks", "list"),
        ("mailbox", "list"),
        ("imap", "list"),
        ("imap", "fetch", "alice"),
        ("spool", "status"),
        ("spool", "ingest"),
        ("health",),
        ("metrics",),
        ("cleanup", "--dry-run"),
        ("cleanup-stale",),
        ("db", "revision"),
        ("haraka", "start", "--domain", "example.org"),
    ],
)
def test_outside_a_project_one_line_exit_2_and_nothing_created(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = run_installed(*args, cwd=tmp_path)
    assert result.code == 2, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "MAIL_PIPELINE_HOME" in lines[0] and "`mail-pipeline db upgrade`" in lines[0]
    assert str(tmp_path / "var" / "mail_pipeline.db") in lines[0]
    assert list(tmp_path.iterdir()) == []  # no ./var/, nothing else


def test_db_upgrade_creates_the_store_in_the_default_home(tmp_path: Path) -> None:
    made = run_installed("db", "upgrade", cwd=tmp_path)
    assert made.code == 0, made.err
    assert (tmp_path / "var" / "mail_pipeline.db").is_file()
    listed = run_installed("users", "list", cwd=tmp_path)
    assert (listed.code, listed.out, listed.err) == (0, "no users\n", "")


def test_a_named_home_without_a_store_is_named_in_the_line(tmp_path: Path) -> None:
    home = tmp_path / "elsewhere"
    result = run_installed(
        "tasks", "list", cwd=tmp_path, env=clean_environ(MAIL_PIPELINE_HOME=str(home))
    )
    assert result.code == 2
    assert f"MAIL_PIPELINE_HOME={home}" in result.err and not home.exists()


def test_a_database_that_is_down_exits_1_in_one_line(tmp_path: Path) -> None:
    env = clean_environ(MAIL_PIPELINE_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    result = run_installed("users", "list", cwd=tmp_path, env=env)
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mail-pipeline: error: database: ")
