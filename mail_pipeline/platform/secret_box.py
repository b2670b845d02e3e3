"""Encryption of secrets at rest (IMAP passwords, OAuth2 tokens) with Fernet.

Stored secrets look like ``fernet:v1:<token>``. The key is found by
:func:`mail_pipeline.platform.settings.load_settings` (``MAIL_PIPELINE_SECRET_KEY``, then
``MAIL_PIPELINE_SECRET_KEY_FILE``, then ``$MAIL_PIPELINE_HOME/secret.key``): either a Fernet key
(``SecretBox.generate_key()``, what ``mail-pipeline secret-key`` writes) or any passphrase of 16+
characters, which is stretched with HKDF-SHA256. Fernet authenticates as well as encrypts, so a
wrong key is reported as such instead of producing garbage.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mail_pipeline.errors import SecretKeyError

PREFIX = "fernet:v1:"
MASK = "********"


def is_encrypted(value: str) -> bool:
    """True when ``value`` is a secret sealed by :class:`SecretBox`."""
    return value.startswith(PREFIX)


def mask(value: str | None) -> str:
    """Return the text to show in place of a secret: a fixed mask, or "" when there is none."""
    return MASK if value else ""


class SecretBox:
    """Seals and opens secrets with one key."""

    def __init__(self, key: str | None) -> None:
        """Use ``key`` (a Fernet key or a passphrase of at least 16 characters).

        Raises:
            SecretKeyError: no key, or a passphrase that is too short.
        """
        if not key:
            raise SecretKeyError(
                "no secret key is set (MAIL_PIPELINE_SECRET_KEY, MAIL_PIPELINE_SECRET_KEY_FILE "
                "or $MAIL_PIPELINE_HOME/secret.key): it is needed to seal and open IMAP "
                "passwords; create the key file with: mail-pipeline secret-key"
            )
        self._fernet = Fernet(_fernet_key(key))

    @staticmethod
    def generate_key() -> str:
        """Return a new random Fernet key."""
        return Fernet.generate_key().decode()

    def seal(self, plaintext: str) -> str:
        """Return ``plaintext`` sealed as ``fernet:v1:<token>`` (sealed input comes back as is)."""
        if is_encrypted(plaintext):
            return plaintext
        return PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        """Return the plaintext of a sealed secret.

        Raises:
            SecretKeyError: the value is not sealed, or was sealed with another key.
        """
        if not is_encrypted(sealed):
            raise SecretKeyError("the stored secret is not encrypted (expected fernet:v1:...)")
        try:
            return self._fernet.decrypt(sealed[len(PREFIX) :].encode()).decode()
        except (InvalidToken, ValueError):
            raise SecretKeyError(
                "cannot decrypt a stored secret: the secret key is not the key it was "
                "encrypted with (see where the key comes from with: mail-pipeline secret-key)"
            ) from None


def create_key_file(path: Path) -> bool:
    """Write a new Fernet key to ``path`` (mode 0600, parents created) unless it has a key.

    An existing file is never overwritten: the passwords sealed with its key would be lost.

    Returns:
        True when the file was created, False when it already held a key.

    Raises:
        SecretKeyError: the file exists but is empty or unreadable, or cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            has_key = bool(path.read_text().strip())
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretKeyError(f"key file {path} exists but cannot be read: {exc}") from None
        if not has_key:
            raise SecretKeyError(f"key file {path} exists but is empty: remove it first") from None
        return False
    except OSError as exc:
        raise SecretKeyError(f"cannot create key file {path}: {exc}") from None
    try:
        with os.fdopen(fd, "w") as out:
            out.write(SecretBox.generate_key() + "\n")
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise SecretKeyError(f"cannot write key file {path}: {exc}") from None
    return True


def _fernet_key(key: str) -> bytes:
    raw = key.strip().encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except (binascii.Error, ValueError):
        pass
    if len(key) < 16:
        raise SecretKeyError("the secret key is too short: use 16 or more characters")
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"mail_pipeline/secret-key/v1", info=b"fernet"
    ).derive(raw)
    return base64.urlsafe_b64encode(derived)
