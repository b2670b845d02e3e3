"""Store and read a mailbox's OAuth2 grant, sealed: the core above ``store.oauth2_grants``.

The store only takes sealed tokens; these functions seal and open them with the project's
:class:`~mail_pipeline.platform.secret_box.SecretBox` (the key that seals IMAP passwords).
"""

from __future__ import annotations

from mail_pipeline.platform.secret_box import SecretBox
from mail_pipeline.storage.store import MailStore

__all__ = ["has_grant", "load_refresh_token", "remove_grant", "store_refresh_token"]


def store_refresh_token(store: MailStore, box: SecretBox, user_id: int, refresh_token: str) -> None:
    """Seal ``refresh_token`` and store it as ``user_id``'s new grant (any cached access
    token is dropped: the next login refreshes).

    Raises:
        ValueError: the refresh token is empty or contains whitespace.
        NotFoundError: no such user.
        SecretKeyError: no key to seal with.
    """
    if not isinstance(refresh_token, str) or not refresh_token.strip():
        raise ValueError("the refresh token is empty")
    if any(ch.isspace() for ch in refresh_token):
        raise ValueError("the refresh token contains whitespace")
    store.oauth2_grants.save_refresh_token(user_id, box.seal(refresh_token))


def load_refresh_token(store: MailStore, box: SecretBox, user_id: int) -> str | None:
    """Return ``user_id``'s refresh token in clear, or None when no grant is stored.

    Raises:
        SecretKeyError: the stored token cannot be opened with this key.
    """
    grant = store.oauth2_grants.get(user_id)
    return None if grant is None else box.open(grant.refresh_token)


def has_grant(store: MailStore, user_id: int) -> bool:
    """True when a grant is stored for ``user_id`` (nothing is opened)."""
    return store.oauth2_grants.get(user_id) is not None


def remove_grant(store: MailStore, user_id: int) -> bool:
    """Remove ``user_id``'s grant (the mailbox must be authorized again).

    Returns:
        True when there was one.
    """
    return store.oauth2_grants.delete(user_id)
