"""Encryption of secrets at rest (IMAP passwords, OAuth2 tokens) with Fernet.

Stored secrets look like ``fernet:v1:<token>``. The key comes from ``MAIL_PIPELINE_SECRET_KEY``:
either a Fernet key (``SecretBox.generate_key()``) or any passphrase of 16+ characters, which is
stretched with HKDF-SHA256. Fernet authenticates as well as encrypts, so a wrong key is reported
as such instead of producing garbage.
"""

from __future__ import annotations

import base64
import binascii

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
                "MAIL_PIPELINE_SECRET_KEY is not set: it is needed to encrypt IMAP passwords "
                "(make one with: mail-pipeline secret-key)"
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
            return self._fernet.decrypt(sealed[len(PREFIX):].encode()).decode()
        except (InvalidToken, ValueError):
            raise SecretKeyError(
                "cannot decrypt a stored secret: MAIL_PIPELINE_SECRET_KEY is not the key it "
                "was encrypted with"
            ) from None


def _fernet_key(key: str) -> bytes:
    raw = key.strip().encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except (binascii.Error, ValueError):
        pass
    if len(key) < 16:
        raise SecretKeyError("MAIL_PIPELINE_SECRET_KEY is too short: use 16 or more characters")
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"mail_pipeline/secret-key/v1", info=b"fernet"
    ).derive(raw)
    return base64.urlsafe_b64encode(derived)
