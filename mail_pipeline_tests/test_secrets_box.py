"""Secrets are sealed with the configured key and never readable without it."""

from __future__ import annotations

import pytest

from mail_pipeline.errors import SecretKeyError
from mail_pipeline.secrets_box import MASK, SecretBox, is_encrypted, mask


def test_round_trip_with_a_fernet_key_and_a_passphrase() -> None:
    for key in (SecretBox.generate_key(), "a long enough passphrase"):
        box = SecretBox(key)
        sealed = box.seal("hunter2")
        assert is_encrypted(sealed) and "hunter2" not in sealed
        assert box.open(sealed) == "hunter2"
        assert box.seal(sealed) == sealed  # sealing twice does not double-encrypt


def test_wrong_or_missing_key_is_a_clear_error() -> None:
    sealed = SecretBox("the first passphrase").seal("hunter2")
    with pytest.raises(SecretKeyError, match="not the key"):
        SecretBox("another passphrase!").open(sealed)
    with pytest.raises(SecretKeyError, match="not set"):
        SecretBox(None)
    with pytest.raises(SecretKeyError, match="too short"):
        SecretBox("short")
    with pytest.raises(SecretKeyError, match="not encrypted"):
        SecretBox("the first passphrase").open("hunter2")


def test_mask() -> None:
    assert mask("hunter2") == MASK
    assert mask("") == "" and mask(None) == ""
