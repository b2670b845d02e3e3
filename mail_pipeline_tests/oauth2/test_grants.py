"""Grants are stored sealed (the raw row holds no clear token) and read back in clear."""

from __future__ import annotations

import pytest

from mail_pipeline.errors import NotFoundError, SecretKeyError
from mail_pipeline.oauth2.grants import (
    has_grant,
    load_refresh_token,
    remove_grant,
    store_refresh_token,
)
from mail_pipeline.platform.secret_box import SecretBox
from mail_pipeline.storage.store import MailStore

BOX = SecretBox("a passphrase for the grants tests")


def test_a_refresh_token_is_sealed_at_rest_and_read_back(store: MailStore) -> None:
    user = store.users.add("ava", "ava@example.org")
    assert not has_grant(store, user.id)
    assert load_refresh_token(store, BOX, user.id) is None
    store_refresh_token(store, BOX, user.id, "rt-clear-value-123")
    assert has_grant(store, user.id)
    assert load_refresh_token(store, BOX, user.id) == "rt-clear-value-123"
    with store.engine.connect() as conn:
        (raw,) = conn.exec_driver_sql("SELECT refresh_token FROM oauth2_grants").one()
    assert raw.startswith("fernet:v1:") and "rt-clear-value-123" not in raw
    with pytest.raises(SecretKeyError):
        load_refresh_token(store, SecretBox("another passphrase, another key"), user.id)
    assert remove_grant(store, user.id) and not has_grant(store, user.id)
    assert not remove_grant(store, user.id)


@pytest.mark.parametrize("token", ["", "   ", "two words"])
def test_unusable_refresh_tokens_are_refused(store: MailStore, token: str) -> None:
    user = store.users.add("bo", "bo@example.org")
    with pytest.raises(ValueError):
        store_refresh_token(store, BOX, user.id, token)
    assert not has_grant(store, user.id)


def test_an_unknown_user_is_not_found(store: MailStore) -> None:
    with pytest.raises(NotFoundError):
        store_refresh_token(store, BOX, 424_242, "rt")
