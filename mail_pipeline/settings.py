"""Process settings read from the environment, on demand (never at import time).

| variable | default | meaning |
| --- | --- | --- |
| ``MAIL_PIPELINE_HOME`` | ``./var`` | where the embedded defaults live |
| ``MAIL_PIPELINE_DATABASE_URL`` | ``sqlite:///$HOME/mail_pipeline.db`` | the store |
| ``MAIL_PIPELINE_ATTACHMENT_ROOT`` | ``$HOME/attachments`` | attachment files |
| ``MAIL_PIPELINE_SPOOL_DIR`` | ``$HOME/spool`` | the Haraka spool |
| ``MAIL_PIPELINE_SECRET_KEY`` | (none) | key that encrypts IMAP passwords at rest |
| ``MAIL_PIPELINE_SECRET_KEY_FILE`` | (none) | a file holding that key, instead |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Where the store, attachments and spool live, and the secret key."""

    home: Path
    database_url: str
    attachment_root: Path
    spool_dir: Path
    secret_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default: ``os.environ``) with the defaults above.

        Raises:
            ConfigError: ``MAIL_PIPELINE_SECRET_KEY_FILE`` names a file that cannot be read.
        """
        env = os.environ if environ is None else environ
        home = Path(env.get("MAIL_PIPELINE_HOME") or "var").expanduser().absolute()
        url = env.get("MAIL_PIPELINE_DATABASE_URL") or f"sqlite:///{home / 'mail_pipeline.db'}"
        attachments = Path(env.get("MAIL_PIPELINE_ATTACHMENT_ROOT") or home / "attachments")
        spool = Path(env.get("MAIL_PIPELINE_SPOOL_DIR") or home / "spool")
        return cls(
            home=home,
            database_url=url,
            attachment_root=attachments.expanduser().absolute(),
            spool_dir=spool.expanduser().absolute(),
            secret_key=read_secret_key(env),
        )


def read_secret_key(env: Mapping[str, str]) -> str | None:
    """Return the secret key from ``MAIL_PIPELINE_SECRET_KEY`` or ``..._KEY_FILE``, or None.

    Raises:
        ConfigError: the key file cannot be read.
    """
    from mail_pipeline.errors import SecretKeyError

    key = env.get("MAIL_PIPELINE_SECRET_KEY")
    if key:
        return key.strip()
    path = env.get("MAIL_PIPELINE_SECRET_KEY_FILE")
    if path:
        try:
            return Path(path).expanduser().read_text().strip() or None
        except OSError as exc:
            raise SecretKeyError(
                f"cannot read MAIL_PIPELINE_SECRET_KEY_FILE {path}: {exc}"
            ) from None
    return None
