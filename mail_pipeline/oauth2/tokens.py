"""The access token of a mailbox with an OAuth2 client: cached while valid, else refreshed.

:class:`StoredTokenSource` is what an account's login asks (see
:class:`~mail_pipeline.intake.imap.account.AccessTokenSource`). Its
:meth:`~StoredTokenSource.access_token`:

1. reads the user's grant (:attr:`MailStore.oauth2_grants`); none is
   :class:`~mail_pipeline.errors.OAuth2NotAuthorizedError`;
2. returns the cached access token while it is valid for longer than the policy's safety
   margin;
3. otherwise takes the store's lease lock ``oauth2:<user_id>`` (one refresh per account at a
   time, across threads AND processes: the lock is a row of the shared store). Whoever waits
   for the lock re-reads the grant each poll and uses the new access token as soon as the
   holder has stored it, so N concurrent fetches of one mailbox cause ONE refresh; the holder
   re-reads the grant too before refreshing (it may have been refreshed just before);
4. refreshes at the token endpoint
   (:func:`~mail_pipeline.oauth2.token_endpoint.refresh_access_token`), retrying transient
   failures with exponential backoff a bounded number of times, and stores the new access
   token, its expiry and the rotated refresh token (sealed) — only while the grant is still
   the one it refreshed (a re-authorization in between wins).

A refused grant (:class:`~mail_pipeline.errors.OAuth2GrantError`) is raised at once: it is an
authentication failure of that mailbox (the circuit breaker counts it). A token endpoint that
stays down is :class:`~mail_pipeline.errors.OAuth2EndpointError` after the last attempt
(transient: the breaker does not count it). No message or log line contains a token or the
client secret.

Known limit: a provider that rotates refresh tokens strictly (the old one dies at once) and
answers a refresh after this side gave up (timeout) has rotated a token nobody received; the
next refresh then gets ``invalid_grant`` and the mailbox must be re-authorized. Nothing on the
client side can recover that. Microsoft's identity platform does not revoke old refresh tokens
when they are used (learn.microsoft.com, "Refresh tokens in the Microsoft identity platform")
and Google normally answers a refresh without a new refresh token, so neither loses a grant
this way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mail_pipeline.errors import (
    OAuth2EndpointError,
    OAuth2GrantError,
    OAuth2NotAuthorizedError,
)
from mail_pipeline.oauth2.token_endpoint import (
    DEFAULT_ENDPOINT_TIMEOUT,
    RefreshedToken,
    refresh_access_token,
)
from mail_pipeline.platform.secret_box import SecretBox
from mail_pipeline.storage.store import MailStore, OAuth2Grant
from mail_pipeline.storage.store.base import Clock, utc_now

__all__ = [
    "ClientSettings",
    "RefreshPolicy",
    "Refresher",
    "StoredTokenSource",
    "lock_name",
    "not_authorized_message",
]

log = logging.getLogger(__name__)

#: Lifetime assumed for an access token whose answer had no ``expires_in``.
ASSUMED_LIFETIME_SECONDS = 3600

Refresher = Callable[..., RefreshedToken]


@dataclass(frozen=True)
class ClientSettings:
    """The OAuth2 client a mailbox's grant belongs to (``client_secret`` in clear, None for a
    public client)."""

    client_id: str
    token_endpoint: str
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RefreshPolicy:
    """How access tokens are cached and refreshed.

    ``safety_margin``: seconds before its expiry a cached access token is no longer used.
    ``endpoint_timeout``: seconds one token request may take. ``attempts``: token requests per
    refresh when the endpoint fails transiently, with ``backoff`` seconds before the second,
    doubling after. ``lock_ttl``: seconds the per-account refresh lock is held at most (it must
    cover every attempt). ``wait_timeout``: seconds a fetch waits for another one's refresh
    (default ``lock_ttl``). ``poll_interval``: seconds between two looks at the lock.

    Raises:
        ValueError: a value that is not positive (``safety_margin`` and ``backoff`` may be 0),
            or ``attempts`` < 1.
    """

    safety_margin: float = 60.0
    endpoint_timeout: float = DEFAULT_ENDPOINT_TIMEOUT
    attempts: int = 3
    backoff: float = 1.0
    lock_ttl: float = 60.0
    wait_timeout: float | None = None
    poll_interval: float = 0.1

    @classmethod
    def with_requests(cls, endpoint_timeout: float, attempts: int, backoff: float) -> RefreshPolicy:
        """Return the default policy with these token requests, and a refresh lock long enough
        for all of them: the attempts' timeouts and backoffs plus 10 s (at least the default).

        Raises:
            ValueError: as the class does for these values.
        """
        worst = attempts * endpoint_timeout + backoff * (2 ** max(attempts - 1, 0) - 1)
        return cls(
            endpoint_timeout=endpoint_timeout,
            attempts=attempts,
            backoff=backoff,
            lock_ttl=max(cls.lock_ttl, worst + 10.0),
        )

    def __post_init__(self) -> None:
        if self.safety_margin < 0 or self.backoff < 0:
            raise ValueError("safety_margin and backoff must be >= 0")
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ValueError("attempts must be a whole number")
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")
        for name in ("endpoint_timeout", "lock_ttl", "poll_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.wait_timeout is not None and not self.wait_timeout > 0:
            raise ValueError("wait_timeout must be positive")


def lock_name(user_id: int) -> str:
    """Return the name of the lease lock that serialises the refreshes of ``user_id``."""
    return f"oauth2:{user_id}"


def not_authorized_message(username: str) -> str:
    """Return the message of an account whose OAuth2 client has no grant yet."""
    return (
        f"IMAP account {username!r}: OAuth2 is not authorized yet: "
        f"run `mail-pipeline imap authorize {username}`"
    )


class StoredTokenSource:
    """The access tokens of one user's mailbox, from the grant in the store (see the module
    docstring). Thread-safe: every call reads the store."""

    def __init__(
        self,
        store: MailStore,
        box: SecretBox,
        user_id: int,
        username: str,
        client: ClientSettings,
        *,
        policy: RefreshPolicy | None = None,
        clock: Clock = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        refresher: Refresher = refresh_access_token,
    ) -> None:
        """``username`` is the store user's name (used in messages and the authorize hint);
        ``refresher`` makes one token request (tests may wrap it)."""
        self.store = store
        self.box = box
        self.user_id = user_id
        self.username = username
        self.client = client
        self.policy = policy or RefreshPolicy()
        self._clock = clock
        self._sleep = sleep
        self._refresher = refresher

    # --- the AccessTokenSource protocol ----------------------------------------------------

    def access_token(self) -> tuple[str, bool]:
        """Return ``(access token, came from the cache)``.

        Raises:
            OAuth2NotAuthorizedError: no grant is stored for the user.
            OAuth2GrantError: the token endpoint refused the grant or the client.
            OAuth2EndpointError: the endpoint stayed unusable for every attempt, or another
                fetch held the refresh lock for longer than ``wait_timeout``.
            SecretKeyError: a stored token cannot be opened with this key.
        """
        cached = self._cached(self._grant())
        if cached is not None:
            return cached, True
        policy = self.policy
        wait = policy.wait_timeout if policy.wait_timeout is not None else policy.lock_ttl
        deadline = time.monotonic() + wait
        name = lock_name(self.user_id)
        while True:
            lease = self.store.locks.acquire(
                name, policy.lock_ttl, owner_info=f"oauth2 refresh of {self.username}"
            )
            if lease is not None:
                try:
                    grant = self._grant()
                    cached = self._cached(grant)
                    if cached is not None:  # refreshed by another fetch while we waited
                        return cached, True
                    return self._refresh(grant), False
                finally:
                    self.store.locks.release(name, lease)
            if time.monotonic() >= deadline:
                raise OAuth2EndpointError(
                    f"IMAP account {self.username!r}: another fetch has been refreshing the "
                    f"OAuth2 access token for over {wait:g} s"
                )
            self._sleep(policy.poll_interval)
            cached = self._cached(self._grant())
            if cached is not None:
                return cached, True

    def reject(self, access_token: str) -> None:
        """Forget the cached access token when it is ``access_token`` (the IMAP server refused
        it before its expiry: revoked, or a clock that is off), so the next call refreshes."""
        grant = self.store.oauth2_grants.get(self.user_id)
        if grant is None or grant.access_token is None:
            return
        if self.box.open(grant.access_token) == access_token:
            self.store.oauth2_grants.clear_access_token(self.user_id)
            log.info(
                "%s: the IMAP server refused the cached OAuth2 token; refreshing", self.username
            )

    # --- internals -------------------------------------------------------------------------

    def _grant(self) -> OAuth2Grant:
        grant = self.store.oauth2_grants.get(self.user_id)
        if grant is None:
            raise OAuth2NotAuthorizedError(not_authorized_message(self.username))
        return grant

    def _cached(self, grant: OAuth2Grant) -> str | None:
        """The cached access token while it is valid beyond the safety margin, else None."""
        if grant.access_token is None or grant.expires_at is None:
            return None
        if grant.expires_at - timedelta(seconds=self.policy.safety_margin) <= self._clock():
            return None
        return self.box.open(grant.access_token)

    def _refresh(self, grant: OAuth2Grant) -> str:
        """Refresh with ``grant``'s refresh token (the caller holds the lock); store and
        return the new access token."""
        refresh_token = self.box.open(grant.refresh_token)
        refreshed = self._request(refresh_token)
        expires_at = self._expiry(refreshed.expires_in)
        rotated = refreshed.refresh_token != refresh_token
        stored = self.store.oauth2_grants.save_refresh(
            self.user_id,
            refreshed_with=grant.refresh_token,
            sealed_access_token=self.box.seal(refreshed.access_token),
            expires_at=expires_at,
            sealed_refresh_token=self.box.seal(refreshed.refresh_token) if rotated else None,
        )
        if stored:
            log.info(
                "%s: OAuth2 access token refreshed (valid until %s%s)",
                self.username,
                expires_at.isoformat(timespec="seconds"),
                ", refresh token rotated" if rotated else "",
            )
        else:
            log.warning(
                "%s: OAuth2 grant changed during the refresh (re-authorized?); "
                "the new access token was not cached",
                self.username,
            )
        return refreshed.access_token

    def _request(self, refresh_token: str) -> RefreshedToken:
        """One refresh, with bounded retries of transient failures."""
        policy = self.policy
        for attempt in range(1, policy.attempts + 1):
            try:
                return self._refresher(
                    username=self.username,
                    client_id=self.client.client_id,
                    client_secret=self.client.client_secret,
                    token_endpoint=self.client.token_endpoint,
                    refresh_token=refresh_token,
                    scopes=self.client.scopes,
                    timeout=policy.endpoint_timeout,
                )
            except OAuth2GrantError:
                raise
            except OAuth2EndpointError as exc:
                if attempt == policy.attempts:
                    raise OAuth2EndpointError(
                        f"{exc} (gave up after {attempt} attempt{'s' if attempt > 1 else ''})"
                    ) from None
                wait = policy.backoff * 2 ** (attempt - 1)
                log.warning(
                    "%s: OAuth2 refresh attempt %d of %d failed (%s); retrying in %g s",
                    self.username,
                    attempt,
                    policy.attempts,
                    exc,
                    wait,
                )
                self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _expiry(self, expires_in: int | None) -> datetime:
        lifetime = ASSUMED_LIFETIME_SECONDS if expires_in is None else max(expires_in, 0)
        return self._clock() + timedelta(seconds=lifetime)
