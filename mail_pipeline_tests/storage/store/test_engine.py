"""The engine: readers beside a writer, pooled connections, and no connection across a fork."""

from __future__ import annotations

import multiprocessing
from typing import Any

from sqlalchemy import text

from mail_pipeline.storage.store import MailStore


def test_reads_go_on_while_another_connection_holds_the_write_lock(store: MailStore) -> None:
    alice = store.users.add("alice", "alice@example.org")
    store.users.set_setting("alice", "email_config", {"mode": "custom_imap"})
    # A writer in the middle of its transaction (on SQLite: BEGIN IMMEDIATE, the write lock).
    with store.engine.begin() as writer:
        writer.execute(
            text("UPDATE users SET email = :e WHERE id = :id"),
            {"e": "new@example.org", "id": alice.id},
        )
        # Lookups read the last committed state at once instead of queueing behind it
        # (before, they also took the write lock and waited out SQLite's busy timeout).
        assert store.users.get(alice.id).email == "alice@example.org"
        assert store.users.get_setting("alice", "email_config") == {"mode": "custom_imap"}
        assert store.messages.sync_position(alice.id, "INBOX") is None
        assert store.mailboxes.get(alice.id) is None
    assert store.users.get(alice.id).email == "new@example.org"


def test_connections_are_reused_between_transactions(store: MailStore) -> None:
    store.users.add("bob", "bob@example.org")
    seen = set()
    for _ in range(5):
        with store.engine.connect() as connection:
            seen.add(id(connection.connection.dbapi_connection))
        store.users.get("bob")
    assert len(seen) == 1


def _child(store: MailStore, inherited: Any, out: Any) -> None:
    with store.engine.connect() as connection:
        mine = connection.connection.dbapi_connection
        count = connection.execute(text("SELECT count(*) FROM users")).scalar_one()
    out.put((mine is not inherited, count, store.users.get("carol").username))


def test_a_forked_child_opens_its_own_connection(store: MailStore) -> None:
    store.users.add("carol", "carol@example.org")
    with store.engine.connect() as connection:
        inherited = connection.connection.dbapi_connection  # back in the pool after this
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child, args=(store, inherited, out))
    child.start()
    fresh, count, name = out.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0
    assert fresh and count == 1 and name == "carol"
    # The parent's pooled connection still works.
    assert store.users.get("carol").email == "carol@example.org"
