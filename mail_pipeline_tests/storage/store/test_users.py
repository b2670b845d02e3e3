"""Users and aliases: addresses reach every active user, compared case-insensitively."""

from __future__ import annotations

from mail_pipeline.storage.store import MailStore


def test_an_address_reaches_users_by_email_and_active_alias(store: MailStore) -> None:
    ann = store.users.add("ann", "Ann@Example.org")
    bob = store.users.add("bob", "bob@example.org")
    store.users.add_alias(bob.id, "team@example.org")
    store.users.add_alias(ann.id, "Sales@Example.org")
    found = store.users.user_ids_by_address(
        ["ANN@example.org", "Team@Example.org", "sales@example.org", "nobody@example.org", ""]
    )
    assert found == {
        "ann@example.org": {ann.id},
        "team@example.org": {bob.id},
        "sales@example.org": {ann.id},
    }


def test_inactive_users_and_removed_aliases_reach_nobody(store: MailStore) -> None:
    ann = store.users.add("ann", "ann@example.org")
    store.users.add_alias(ann.id, "team@example.org")
    store.users.remove_alias("team@example.org")
    assert store.users.user_ids_by_address(["team@example.org"]) == {}
    store.users.set_active(ann.id, False)
    assert store.users.user_ids_by_address(["ann@example.org"]) == {}
    assert store.users.get("ann").id == ann.id
