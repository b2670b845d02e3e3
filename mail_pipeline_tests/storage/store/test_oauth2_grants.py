"""The oauth2_grants repository: sealed tokens only, a new grant drops the cache, a refresh is
stored only over the grant it refreshed, rotations are counted, the row goes with its user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from mail_pipeline.errors import NotFoundError
from mail_pipeline.platform.secret_box import SecretBox
from mail_pipeline.storage.store import MailStore

BOX = SecretBox("a passphrase for the grant tests")
LATER = datetime(2030, 1, 1, tzinfo=UTC)


def test_a_new_grant_is_stored_and_read_back_sealed(store: MailStore) -> None:
    user = store.users.add("gina", "gina@example.org")
    assert store.oauth2_grants.get(user.id) is None
    store.oauth2_grants.save_refresh_token(user.id, BOX.seal("rt-1"))
    grant = store.oauth2_grants.get(user.id)
    assert grant is not None
    assert BOX.open(grant.refresh_token) == "rt-1"
    assert grant.access_token is None and grant.expires_at is None
    assert grant.rotated_count == 0
    assert "rt-1" not in repr(grant) and grant.refresh_token not in repr(grant)


def test_clear_tokens_are_refused(store: MailStore) -> None:
    user = store.users.add("hal", "hal@example.org")
    with pytest.raises(ValueError, match="sealed"):
        store.oauth2_grants.save_refresh_token(user.id, "rt-in-clear")
    store.oauth2_grants.save_refresh_token(user.id, sealed := BOX.seal("rt"))
    with pytest.raises(ValueError, match="sealed"):
        store.oauth2_grants.save_refresh(
            user.id, refreshed_with=sealed, sealed_access_token="at-in-clear", expires_at=LATER
        )
    assert store.oauth2_grants.get(user.id) is not None
    assert store.oauth2_grants.get(user.id).access_token is None  # type: ignore[union-attr]


def test_unknown_user_is_not_found(store: MailStore) -> None:
    with pytest.raises(NotFoundError):
        store.oauth2_grants.save_refresh_token(999_999, BOX.seal("rt"))


def test_a_refresh_is_cached_and_a_rotation_counted(store: MailStore) -> None:
    user = store.users.add("ida", "ida@example.org")
    store.oauth2_grants.save_refresh_token(user.id, first := BOX.seal("rt-1"))
    assert store.oauth2_grants.save_refresh(
        user.id, refreshed_with=first, sealed_access_token=BOX.seal("at-1"), expires_at=LATER
    )
    grant = store.oauth2_grants.get(user.id)
    assert grant is not None and grant.refresh_token == first and grant.rotated_count == 0
    assert grant.access_token is not None and BOX.open(grant.access_token) == "at-1"
    assert grant.expires_at == LATER

    second = BOX.seal("rt-2")
    assert store.oauth2_grants.save_refresh(
        user.id,
        refreshed_with=first,
        sealed_access_token=BOX.seal("at-2"),
        expires_at=LATER + timedelta(hours=1),
        sealed_refresh_token=second,
    )
    grant = store.oauth2_grants.get(user.id)
    assert grant is not None and BOX.open(grant.refresh_token) == "rt-2"
    assert grant.rotated_count == 1


def test_a_refresh_of_a_replaced_grant_changes_nothing(store: MailStore) -> None:
    """A re-authorization between a refresh's start and its save wins."""
    user = store.users.add("jon", "jon@example.org")
    store.oauth2_grants.save_refresh_token(user.id, old := BOX.seal("rt-old"))
    store.oauth2_grants.save_refresh_token(user.id, BOX.seal("rt-new"))
    assert not store.oauth2_grants.save_refresh(
        user.id,
        refreshed_with=old,
        sealed_access_token=BOX.seal("at"),
        expires_at=LATER,
        sealed_refresh_token=BOX.seal("rt-rotated"),
    )
    grant = store.oauth2_grants.get(user.id)
    assert grant is not None and BOX.open(grant.refresh_token) == "rt-new"
    assert grant.access_token is None
    assert not store.oauth2_grants.save_refresh(
        999_999, refreshed_with=old, sealed_access_token=BOX.seal("at"), expires_at=LATER
    )


def test_a_new_grant_drops_the_cached_access_token(store: MailStore) -> None:
    user = store.users.add("kim", "kim@example.org")
    store.oauth2_grants.save_refresh_token(user.id, first := BOX.seal("rt-1"))
    store.oauth2_grants.save_refresh(
        user.id,
        refreshed_with=first,
        sealed_access_token=BOX.seal("at"),
        expires_at=LATER,
        sealed_refresh_token=BOX.seal("rt-2"),
    )
    store.oauth2_grants.save_refresh_token(user.id, BOX.seal("rt-3"))
    grant = store.oauth2_grants.get(user.id)
    assert grant is not None
    assert grant.access_token is None and grant.expires_at is None and grant.rotated_count == 0


def test_clear_access_token_and_delete(store: MailStore) -> None:
    user = store.users.add("lea", "lea@example.org")
    store.oauth2_grants.save_refresh_token(user.id, first := BOX.seal("rt"))
    store.oauth2_grants.save_refresh(
        user.id, refreshed_with=first, sealed_access_token=BOX.seal("at"), expires_at=LATER
    )
    store.oauth2_grants.clear_access_token(user.id)
    grant = store.oauth2_grants.get(user.id)
    assert grant is not None and grant.access_token is None and grant.refresh_token == first
    assert [g.user_id for g in store.oauth2_grants.all()] == [user.id]
    assert store.oauth2_grants.delete(user.id)
    assert not store.oauth2_grants.delete(user.id)
    assert store.oauth2_grants.get(user.id) is None


def test_the_grant_goes_with_its_user(store: MailStore) -> None:
    user = store.users.add("max", "max@example.org")
    store.oauth2_grants.save_refresh_token(user.id, BOX.seal("rt"))
    with store.engine.begin() as conn:  # foreign keys are on for SQLite too (engine.py)
        conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": user.id})
    assert store.oauth2_grants.get(user.id) is None
