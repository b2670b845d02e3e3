"""The access token of a client account: cached while valid, refreshed under the per-account
lock (one refresh however many fetches ask, across store instances), rotated refresh tokens
stored sealed, transient failures retried with backoff, refused grants raised at once.

Runs on SQLite and PostgreSQL (the lock and the grant are rows of the store)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from mail_pipeline.errors import (
    ImapAuthError,
    ImapConnectError,
    OAuth2EndpointError,
    OAuth2GrantError,
    OAuth2NotAuthorizedError,
)
from mail_pipeline.oauth2.grants import load_refresh_token, store_refresh_token
from mail_pipeline.oauth2.tokens import ClientSettings, RefreshPolicy, StoredTokenSource, lock_name
from mail_pipeline.platform.secret_box import SecretBox
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.fixtures.oauth2_server import OAuth2TestServer, TestClient

BOX = SecretBox("a passphrase for the token tests")
FAST = RefreshPolicy(backoff=0.0, endpoint_timeout=5, lock_ttl=30, poll_interval=0.02)


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def server() -> Iterator[OAuth2TestServer]:
    started = OAuth2TestServer()
    started.start()
    yield started
    started.stop()


def _settings(server: OAuth2TestServer, client: TestClient) -> ClientSettings:
    return ClientSettings(client.client_id, server.token_endpoint, client.client_secret, ("imap",))


def _authorized(
    store: MailStore, server: OAuth2TestServer, client: TestClient, name: str
) -> tuple[int, str]:
    """A store user with a grant of ``client``; return (user id, its first refresh token)."""
    user = store.users.add(name, f"{name}@example.org")
    token = server.issue_refresh_token(client, name)
    store_refresh_token(store, BOX, user.id, token)
    return user.id, token


def _source(
    store: MailStore,
    server: OAuth2TestServer,
    client: TestClient,
    user_id: int,
    name: str,
    **options: object,
) -> StoredTokenSource:
    options.setdefault("policy", FAST)
    return StoredTokenSource(
        store,
        BOX,
        user_id,
        name,
        _settings(server, client),
        **options,  # type: ignore[arg-type]
    )


def test_no_grant_means_not_authorized_with_the_command(
    store: MailStore, server: OAuth2TestServer
) -> None:
    client = server.register_client()
    user = store.users.add("nora", "nora@example.org")
    with pytest.raises(OAuth2NotAuthorizedError) as caught:
        _source(store, server, client, user.id, "nora").access_token()
    assert isinstance(caught.value, ImapAuthError)
    assert str(caught.value) == (
        "IMAP account 'nora': OAuth2 is not authorized yet: run `mail-pipeline imap authorize nora`"
    )
    assert server.requests == []


def test_the_cached_token_is_used_until_it_nears_its_expiry(
    store: MailStore, server: OAuth2TestServer
) -> None:
    server.access_token_lifetime = 3600
    client = server.register_client()
    user_id, _ = _authorized(store, server, client, "olga")
    clock = Clock()
    source = _source(store, server, client, user_id, "olga", clock=clock)

    first, cached = source.access_token()
    assert not cached and server.access_token_owner(first) == "olga"
    grant = store.oauth2_grants.get(user_id)
    assert grant is not None and grant.expires_at == clock.now + timedelta(seconds=3600)

    clock.now += timedelta(seconds=3600 - 61)  # still valid beyond the 60 s margin
    assert source.access_token() == (first, True)
    assert server.refresh_count() == 1

    clock.now += timedelta(seconds=2)  # inside the margin: refreshed
    second, cached = source.access_token()
    assert not cached and second != first
    assert server.refresh_count() == 1 + 1


def test_a_rotated_refresh_token_is_stored_sealed(
    store: MailStore, server: OAuth2TestServer
) -> None:
    client = server.register_client()
    user_id, first = _authorized(store, server, client, "pia")
    clock = Clock()
    source = _source(store, server, client, user_id, "pia", clock=clock)
    for rotations in (1, 2):
        source.access_token()
        [current] = server.valid_refresh_tokens("pia")
        assert current != first
        assert load_refresh_token(store, BOX, user_id) == current
        grant = store.oauth2_grants.get(user_id)
        assert grant is not None and grant.rotated_count == rotations
        assert current not in grant.refresh_token  # sealed
        clock.now += timedelta(hours=2)
    # the first refresh token was rotated out at the server: only the stored one works
    assert first not in server.valid_refresh_tokens("pia")


def test_without_rotation_the_grant_keeps_its_refresh_token(
    store: MailStore, server: OAuth2TestServer
) -> None:
    server.rotate_refresh_tokens = False
    client = server.register_client()
    user_id, first = _authorized(store, server, client, "quinn")
    before = store.oauth2_grants.get(user_id)
    _source(store, server, client, user_id, "quinn").access_token()
    after = store.oauth2_grants.get(user_id)
    assert before is not None and after is not None
    assert after.refresh_token == before.refresh_token and after.rotated_count == 0
    assert load_refresh_token(store, BOX, user_id) == first


def test_twenty_mailboxes_sharing_a_client_refresh_once_each(
    store: MailStore, server: OAuth2TestServer
) -> None:
    """20 mailboxes of one client, each asked for a token by 3 fetches at once, each fetch
    with a store of its own (as separate processes would have): 20 refreshes, one per
    mailbox, never two of one mailbox in flight."""
    server.delay = 0.2  # a slow endpoint makes the fetches of a mailbox overlap
    client = server.register_client()
    names = [f"shared{i:02d}" for i in range(20)]
    users = {name: _authorized(store, server, client, name)[0] for name in names}
    stores = [MailStore(store.url, pool_size=2) for _ in range(3)]
    start = threading.Barrier(len(names) * len(stores))

    def fetch(name: str, own_store: MailStore) -> str:
        start.wait(timeout=30)
        return _source(own_store, server, client, users[name], name).access_token()[0]

    try:
        with ThreadPoolExecutor(max_workers=len(names) * len(stores)) as pool:
            futures = {
                (name, n): pool.submit(fetch, name, own)
                for name in names
                for n, own in enumerate(stores)
            }
            tokens = {key: future.result(timeout=120) for key, future in futures.items()}
    finally:
        for own in stores:
            own.dispose()
    assert server.refresh_count(client.client_id) == len(names)
    for name in names:
        assert server.refresh_count(username=name) == 1
        assert server.max_concurrent_refreshes[name] == 1
        # every fetch of a mailbox got the same, valid token of that mailbox
        got = {tokens[(name, n)] for n in range(len(stores))}
        assert len(got) == 1 and server.access_token_owner(got.pop()) == name
        assert store.locks.get(lock_name(users[name])) is None  # released


def test_a_waiter_takes_the_token_the_lock_holder_stored(
    store: MailStore, server: OAuth2TestServer
) -> None:
    client = server.register_client()
    user_id, _ = _authorized(store, server, client, "rita")
    holder = store.locks.acquire(lock_name(user_id), 30)
    assert holder is not None
    stored = threading.Event()

    def refresh_elsewhere() -> None:
        # another process: refreshes and stores while holding the lock, then releases it
        other = _source(store, server, client, user_id, "rita")
        grant = store.oauth2_grants.get(user_id)
        assert grant is not None
        other._refresh(grant)
        stored.set()
        threading.Event().wait(0.3)
        store.locks.release(lock_name(user_id), holder)

    thread = threading.Thread(target=refresh_elsewhere)
    thread.start()
    token, cached = _source(store, server, client, user_id, "rita").access_token()
    thread.join(10)
    assert stored.is_set() and cached
    assert server.refresh_count() == 1
    assert server.access_token_owner(token) == "rita"


def test_a_lock_held_too_long_is_transient(store: MailStore, server: OAuth2TestServer) -> None:
    client = server.register_client()
    user_id, _ = _authorized(store, server, client, "sam")
    assert store.locks.acquire(lock_name(user_id), 30) is not None
    policy = RefreshPolicy(backoff=0, lock_ttl=30, wait_timeout=0.3, poll_interval=0.05)
    with pytest.raises(OAuth2EndpointError, match="another fetch has been refreshing"):
        _source(store, server, client, user_id, "sam", policy=policy).access_token()
    assert server.requests == []


def test_transient_failures_are_retried_with_backoff(
    store: MailStore, server: OAuth2TestServer
) -> None:
    client = server.register_client()
    user_id, _ = _authorized(store, server, client, "tom")
    sleeps: list[float] = []
    policy = RefreshPolicy(attempts=3, backoff=0.5, lock_ttl=30)
    server.fail_status, server.fail_count = 503, 2
    token, _ = _source(
        store, server, client, user_id, "tom", policy=policy, sleep=sleeps.append
    ).access_token()
    assert server.access_token_owner(token) == "tom"
    assert [r.status for r in server.requests] == [503, 503, 200]
    assert sleeps == [0.5, 1.0]


def test_an_endpoint_that_stays_down_gives_up_after_the_attempts(
    store: MailStore, server: OAuth2TestServer
) -> None:
    client = server.register_client()
    user_id, first = _authorized(store, server, client, "uma")
    server.fail_status = 500
    sleeps: list[float] = []
    source = _source(
        store,
        server,
        client,
        user_id,
        "uma",
        policy=RefreshPolicy(attempts=3, backoff=0.25, lock_ttl=30),
        sleep=sleeps.append,
    )
    with pytest.raises(OAuth2EndpointError) as caught:
        source.access_token()
    assert isinstance(caught.value, ImapConnectError)
    assert "HTTP 500" in str(caught.value) and "gave up after 3 attempts" in str(caught.value)
    assert len(server.requests) == 3 and sleeps == [0.25, 0.5]
    assert load_refresh_token(store, BOX, user_id) == first  # the grant is kept
    assert store.locks.get(lock_name(user_id)) is None


def test_a_refused_grant_is_not_retried(store: MailStore, server: OAuth2TestServer) -> None:
    client = server.register_client()
    user_id, _ = _authorized(store, server, client, "vic")
    server.revoke_grants("vic")
    with pytest.raises(OAuth2GrantError, match="mail-pipeline imap authorize vic"):
        _source(store, server, client, user_id, "vic").access_token()
    assert [r.error for r in server.requests] == ["invalid_grant"]
    assert store.oauth2_grants.get(user_id) is not None  # kept for the operator to replace
    assert store.locks.get(lock_name(user_id)) is None


def test_reject_forgets_only_the_refused_token(store: MailStore, server: OAuth2TestServer) -> None:
    client = server.register_client()
    user_id, _ = _authorized(store, server, client, "wes")
    source = _source(store, server, client, user_id, "wes")
    token, _ = source.access_token()
    source.reject("some-other-token")
    assert source.access_token() == (token, True)
    source.reject(token)
    fresh, cached = source.access_token()
    assert not cached and fresh != token and server.refresh_count() == 2


def test_no_token_or_secret_in_the_logs_or_rows(
    store: MailStore, server: OAuth2TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = server.register_client()
    user_id, _ = _authorized(store, server, client, "xena")
    source = _source(store, server, client, user_id, "xena", sleep=lambda _: None)
    source.access_token()
    server.fail_status, server.fail_count = 500, 1  # a logged retry
    store.oauth2_grants.clear_access_token(user_id)
    source.access_token()
    server.revoke_grants("xena")
    store.oauth2_grants.clear_access_token(user_id)
    with pytest.raises(OAuth2GrantError) as caught:
        source.access_token()
    assert "OAuth2 refresh attempt 1 of 3 failed" in caplog.text
    secrets = server.issued_secrets()
    assert client.client_secret in secrets and len(secrets) >= 4
    with store.engine.connect() as conn:
        rows = " ".join(  # every value in full (a Row's repr cuts long strings)
            str(value)
            for row in conn.exec_driver_sql("SELECT * FROM oauth2_grants").fetchall()
            for value in row
        )
    assert rows.count("fernet:v1:") == 1  # the refresh token (the refused refresh cached none)
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in str(caught.value)
        assert secret not in rows


def test_a_policy_with_more_requests_holds_its_lock_long_enough() -> None:
    default = RefreshPolicy()
    assert RefreshPolicy.with_requests(10.0, 3, 1.0) == default  # 30 s + 3 s: the default 60 s
    longer = RefreshPolicy.with_requests(20.0, 5, 2.0)
    # 5 requests of up to 20 s, and 2 + 4 + 8 + 16 s between them, plus 10 s
    assert (longer.attempts, longer.endpoint_timeout, longer.backoff) == (5, 20.0, 2.0)
    assert longer.lock_ttl == 5 * 20.0 + 30.0 + 10.0
    with pytest.raises(ValueError):
        RefreshPolicy.with_requests(10.0, 0, 1.0)
