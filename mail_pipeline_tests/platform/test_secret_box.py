"""Secrets are sealed with the configured key and never readable without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mail_pipeline.errors import SecretKeyError
from mail_pipeline.platform.secret_box import MASK, SecretBox, create_key_file, is_encrypted, mask


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
    with pytest.raises(SecretKeyError, match="no secret key is set") as missing:
        SecretBox(None)
    assert "mail-pipeline secret-key" in str(missing.value)  # a command that exists (cli tests)
    with pytest.raises(SecretKeyError, match="too short"):
        SecretBox("short")
    with pytest.raises(SecretKeyError, match="not encrypted"):
        SecretBox("the first passphrase").open("hunter2")


def test_mask() -> None:
    assert mask("hunter2") == MASK
    assert mask("") == "" and mask(None) == ""


def test_create_key_file_writes_a_0600_fernet_key_once_and_never_overwrites(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new" / "dir" / "secret.key"
    assert create_key_file(path) is True
    assert path.stat().st_mode & 0o777 == 0o600
    key = path.read_text()
    sealed = SecretBox(key).seal("hunter2")
    assert create_key_file(path) is False  # kept: passwords sealed with it stay readable
    assert path.read_text() == key and SecretBox(path.read_text()).open(sealed) == "hunter2"
    empty = tmp_path / "empty.key"
    empty.write_text("")
    with pytest.raises(SecretKeyError, match="is empty"):
        create_key_file(empty)
