"""The CLI: every mistake is one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import json

import pytest

from mail_pipeline_tests.cli.conftest import Run


def test_users_and_aliases(cli: Run) -> None:
    assert cli("users", "add", "alice", "Alice@Example.org").code == 0
    assert cli("aliases", "add", "alice", "Team@Example.org").code == 0
    users = cli("users", "list")
    assert users.code == 0 and "alice@example.org" in users.out
    aliases = cli("aliases", "list")
    assert "team@example.org" in aliases.out and "alice" in aliases.out
    assert cli("users", "disable", "alice").code == 0
    assert "no" in cli("users", "list").out
    assert cli("aliases", "remove", "TEAM@example.org").code == 0
    assert "team@example.org" not in cli("aliases", "list").out


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


def test_duplicate_user_is_refused(cli: Run) -> None:
    cli("users", "add", "alice", "alice@example.org")
    result = cli("users", "add", "alice2", "ALICE@example.org")
    assert result.code == 2 and "already" in result.err


def test_imap_set_show_masks_the_password(cli: Run) -> None:
    cli("users", "add", "alice", "alice@example.org")
    result = cli("imap", "set", "alice", "--host", "imap.example.org", "--password-stdin",
                 stdin="s3cret-pass\n")
    assert result.code == 0, result.err
    assert "s3cret-pass" not in result.out
    shown = cli("imap", "show", "alice")
    assert shown.code == 0 and "s3cret-pass" not in shown.out
    config = json.loads(shown.out)
    assert config["imap_config"]["password"] == "********"
    assert config["imap_config"]["imap_host"] == "imap.example.org"
    assert config["imap_config"]["imap_ssl_port"] == 993
    listing = cli("imap", "list")
    assert "alice" in listing.out and "yes" in listing.out


def test_imap_set_without_a_secret_source(cli: Run) -> None:
    cli("users", "add", "alice", "alice@example.org")
    result = cli("imap", "set", "alice", "--host", "imap.example.org", stdin="")
    assert result.code == 2 and "--password-stdin" in result.err


def test_tasks_list_shows_state_counters_and_age(cli: Run, store_url: str) -> None:
    from mail_pipeline.storage.store import EmailSource, MailStore, TaskCounters

    store = MailStore(store_url)
    task = store.tasks.create(EmailSource.HARAKA, task_id="t-1")
    store.tasks.start(task.task_id)
    store.tasks.mark_completed(task.task_id, TaskCounters(fetched=5, saved=4, duplicate=1))
    store.dispose()
    result = cli("tasks", "list")
    assert result.code == 0
    row = next(line for line in result.out.splitlines() if "t-1" in line)
    assert "COMPLETED" in row and "HARAKA_EMAIL_FETCH" in row
    assert [c for c in row.replace("│", " ").split() if c.isdigit()][:4] == ["5", "4", "1", "0"]
    shown = cli("tasks", "show", "t-1")
    assert "RUNNING -> COMPLETED" in shown.out


def test_db_upgrade(cli: Run, store_url: str) -> None:
    from alembic.script import ScriptDirectory

    from mail_pipeline.storage.store.store import alembic_config

    head = ScriptDirectory.from_config(alembic_config(store_url)).get_current_head()
    result = cli("db", "upgrade")
    assert result.code == 0 and f"revision {head}" in result.out
    assert cli("db", "revision").out.strip() == head
