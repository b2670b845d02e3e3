"""``mail-pipeline users`` and ``aliases``."""

from __future__ import annotations

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


def test_duplicate_user_is_refused(cli: Run) -> None:
    cli("users", "add", "alice", "alice@example.org")
    result = cli("users", "add", "alice2", "ALICE@example.org")
    assert result.code == 2 and "already" in result.err
