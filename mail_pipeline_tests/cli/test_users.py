"""``mail-pipeline users`` and ``aliases``."""

from __future__ import annotations

import json
from datetime import datetime

from mail_pipeline_tests.cli.conftest import Run


def test_users_and_aliases(cli: Run) -> None:
    assert cli("users", "add", "alice", "Alice@Example.org").code == 0
    assert cli("aliases", "add", "alice", "Team@Example.org").code == 0
    users = cli("users", "list")
    assert users.code == 0 and "alice@example.org" in users.out
    aliases = cli("aliases", "list")
    assert "team@example.org" in aliases.out and "alice" in aliases.out
    assert cli("users", "disable", "alice").code == 0
    assert "disabled" in cli("users", "list").out
    (row,) = json.loads(cli("users", "list", "--json").out)
    assert row["username"] == "alice" and row["active"] is False and row["messages"] == 0
    assert datetime.fromisoformat(row["created_at"]).utcoffset() is not None
    (alias,) = json.loads(cli("aliases", "list", "alice", "--json").out)
    assert alias == {"address": "team@example.org", "username": "alice", "active": True}
    assert cli("aliases", "remove", "TEAM@example.org").code == 0
    assert "team@example.org" not in cli("aliases", "list").out


def test_duplicate_user_is_refused(cli: Run) -> None:
    cli("users", "add", "alice", "alice@example.org")
    result = cli("users", "add", "alice2", "ALICE@example.org")
    assert result.code == 2 and "already" in result.err


def test_empty_lists_say_so(cli: Run) -> None:
    assert cli("users", "list").out == "no users\n"
    assert cli("aliases", "list").out == "no aliases\n"
    cli("users", "add", "alice", "alice@example.org")
    assert cli("aliases", "list", "alice").out == "no aliases of alice\n"
    assert json.loads(cli("aliases", "list", "--json").out) == []
