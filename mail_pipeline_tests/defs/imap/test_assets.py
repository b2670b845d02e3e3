"""The ``mailbox`` asset's check ``last_fetch_ok``: what it says of a mailbox's state."""

from __future__ import annotations

import dagster as dg
import pytest

from mail_pipeline.defs.definitions import build_definitions
from mail_pipeline.defs.imap.assets import evaluate_mailbox
from mail_pipeline.defs.imap.health import LAST_FETCH_OK, MAILBOX
from mail_pipeline.errors import NotFoundError
from mail_pipeline.storage.store import MailStore


def test_the_check_reads_the_mailbox_state(store: MailStore) -> None:
    alice = store.users.add("alice", "alice@example.org")
    store.users.add("bob", "bob@example.org")
    store.mailboxes.record_failure(
        alice.id, "auth", "credentials refused", pause_after_auth_failures=None
    )
    failing = evaluate_mailbox(store, "alice")
    assert not failing.passed and failing.severity is dg.AssetCheckSeverity.ERROR
    assert failing.description == "auth: credentials refused"
    assert failing.metadata["last_error"].value == "auth: credentials refused"
    assert failing.metadata["failing_since"].value != "-"
    assert failing.metadata["last_success"].value == "never"
    assert failing.metadata["status"].value == "failing"

    store.mailboxes.record_success(alice.id)
    healed = evaluate_mailbox(store, "alice")
    assert healed.passed and healed.metadata["status"].value == "ok"
    assert healed.metadata["last_success"].value != "never"
    assert healed.metadata["failing_since"].value == "-"

    never = evaluate_mailbox(store, "bob")  # never fetched: not known to work
    assert not never.passed and never.description == "never fetched"
    with pytest.raises(NotFoundError):
        evaluate_mailbox(store, "nobody")


def test_the_check_is_partitioned_by_mailbox() -> None:
    graph = build_definitions().resolve_asset_graph()
    key = dg.AssetCheckKey(MAILBOX, LAST_FETCH_OK)
    assert key in graph.asset_check_keys
    assert graph.get(MAILBOX).partitions_def is not None
