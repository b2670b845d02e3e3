"""Mailboxes that log in with an OAuth2 client, end to end: the fetcher gets its access token
from the grant in the store (refreshed at the local authorization server, whose tokens the test
Dovecot validates by introspection) and logs in with XOAUTH2 or OAUTHBEARER.

Covers: a token that expires between two fetches is refreshed; a rotated refresh token is
stored; 20 mailboxes sharing a client refresh once each; invalid_grant pauses only that
mailbox, after the configured count; an endpoint that is down or slow is retried, reported as
transient and never pauses; no token or client secret in clear in the rows, logs or results.
Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import imapclient
import pytest

from mail_pipeline.intake.imap.circuit import MailboxCircuitBreaker
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.connection import imap_session
from mail_pipeline.intake.imap.fetcher import MailboxFetcher
from mail_pipeline.intake.imap.results import ErrorKind, MailboxResult
from mail_pipeline.oauth2.grants import load_refresh_token, store_refresh_token
from mail_pipeline.oauth2.tokens import RefreshPolicy
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.fixtures.oauth2_server import OAuth2TestServer, TestClient
from mail_pipeline_tests.intake.imap.mailboxes import SECRET, assert_ok, message, stored_subjects

#: Fast retries so the down-endpoint tests take a second, not a minute.
POLICY = RefreshPolicy(attempts=3, backoff=0.05, endpoint_timeout=0.5, lock_ttl=30)


class Clock:
    """A settable clock (the expiry of cached access tokens is compared with it)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def configs(store: MailStore, clock: Clock) -> EmailConfigManager:
    """The config manager of these tests (overrides the package's): fast retries, our clock."""
    return EmailConfigManager(store, SECRET, oauth2_policy=POLICY, clock=clock)


class ClientMailbox:
    """A Dovecot user tied to a store user whose account has an OAuth2 client and a grant."""

    def __init__(
        self,
        dovecot: DovecotServer,
        auth: OAuth2TestServer,
        store: MailStore,
        configs: EmailConfigManager,
        client: TestClient,
        *,
        authorize: bool = True,
        **imap: Any,
    ) -> None:
        self.dovecot = dovecot
        self.name = dovecot.new_user().username
        self.id = store.users.add(self.name, f"{self.name}@example.org").id
        configs.update_fetch_config(
            self.id,
            {
                "imap_config": {
                    "imap_host": dovecot.host,
                    "imap_ssl_port": dovecot.imaps_port,
                    "security": "ssl",
                    "username": self.name,
                    "ca_file": str(dovecot.ca_cert_path),
                    "oauth2_client_id": client.client_id,
                    "oauth2_client_secret": client.client_secret,
                    "oauth2_token_endpoint": auth.token_endpoint,
                    "oauth2_scopes": ["imap"],
                    "provider": "custom",
                    **imap,
                },
                "filter_config": {"folders": ["INBOX"], "max_age_days": None},
            },
        )
        if authorize:
            store_refresh_token(
                store, configs.box, self.id, auth.issue_refresh_token(client, self.name)
            )

    def append(self, n: int) -> None:
        self.dovecot.append(self.name, message(n, subject=f"{self.name} {n}"))


@pytest.fixture
def client_mailbox(
    dovecot: DovecotServer,
    oauth2_server: OAuth2TestServer,
    store: MailStore,
    configs: EmailConfigManager,
) -> Any:
    def make(client: TestClient, **options: Any) -> ClientMailbox:
        return ClientMailbox(dovecot, oauth2_server, store, configs, client, **options)

    return make


def _secrets_absent(auth: OAuth2TestServer, *texts: str) -> None:
    secrets = auth.issued_secrets()
    assert secrets
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_a_token_that_expires_between_two_fetches_is_refreshed(
    fetcher: MailboxFetcher,
    oauth2_server: OAuth2TestServer,
    client_mailbox: Any,
    store: MailStore,
    clock: Clock,
) -> None:
    oauth2_server.access_token_lifetime = 3600
    box = client_mailbox(oauth2_server.register_client())
    box.append(1)
    assert_ok(fetcher.fetch_user(box.id))
    assert oauth2_server.refresh_count(username=box.name) == 1
    box.append(2)
    assert_ok(fetcher.fetch_user(box.id))  # the cached token
    assert oauth2_server.refresh_count(username=box.name) == 1

    # an hour later the token has expired: at the server (Dovecot refuses it) and by our clock
    oauth2_server.expire_access_tokens(box.name)
    clock.now += timedelta(hours=1)
    box.append(3)
    result = fetcher.fetch_user(box.id)
    assert_ok(result)
    assert oauth2_server.refresh_count(username=box.name) == 2
    assert stored_subjects(store, box.id) == [f"{box.name} {n}" for n in (1, 2, 3)]


def test_a_cached_token_the_server_refuses_is_refreshed_once(
    fetcher: MailboxFetcher, oauth2_server: OAuth2TestServer, client_mailbox: Any
) -> None:
    """Revoked before its expiry (the clock says it is still valid): one refresh, one retry."""
    box = client_mailbox(oauth2_server.register_client())
    assert_ok(fetcher.fetch_user(box.id))
    oauth2_server.expire_access_tokens(box.name)
    assert_ok(fetcher.fetch_user(box.id))
    assert oauth2_server.refresh_count(username=box.name) == 2


def test_a_rotated_refresh_token_is_stored(
    fetcher: MailboxFetcher,
    oauth2_server: OAuth2TestServer,
    client_mailbox: Any,
    store: MailStore,
    configs: EmailConfigManager,
    clock: Clock,
) -> None:
    box = client_mailbox(oauth2_server.register_client())
    first = load_refresh_token(store, configs.box, box.id)
    assert_ok(fetcher.fetch_user(box.id))
    [rotated] = oauth2_server.valid_refresh_tokens(box.name)
    assert rotated != first and first not in oauth2_server.valid_refresh_tokens(box.name)
    assert load_refresh_token(store, configs.box, box.id) == rotated
    # the next refresh works only because the rotated token was kept
    clock.now += timedelta(hours=2)
    assert_ok(fetcher.fetch_user(box.id))
    grant = store.oauth2_grants.get(box.id)
    assert grant is not None and grant.rotated_count == 2


def test_twenty_mailboxes_sharing_a_client_refresh_once_each(
    fetcher: MailboxFetcher,
    oauth2_server: OAuth2TestServer,
    client_mailbox: Any,
    configs: EmailConfigManager,
) -> None:
    """All 20 mailboxes at once, each fetched while a second login of it (a check, another
    process) runs at the same time: 20 refreshes in all, never two of a mailbox in flight."""
    # 40 threads and the test server share one interpreter: on a loaded 2-core machine a
    # request can take over POLICY's 0.5 s. A client that gives up on a request the server
    # then answers has lost the rotated refresh token, and its retry with the old one is
    # refused (invalid_grant), as a strict provider would: that is the timeout tests' subject,
    # not this one's, so this test's requests may take as long as they need.
    configs.oauth2_policy = replace(POLICY, endpoint_timeout=30.0, lock_ttl=120.0)
    oauth2_server.delay = 0.2
    client = oauth2_server.register_client()
    boxes = [client_mailbox(client) for _ in range(20)]
    for box in boxes:
        box.append(1)

    def login(user_id: int) -> bool:
        with imap_session(configs.imap_fetch_config(user_id).account) as session:
            return bool(session.noop())

    with ThreadPoolExecutor(max_workers=40) as pool:
        fetches = [pool.submit(fetcher.fetch_user, box.id) for box in boxes]
        logins = [pool.submit(login, box.id) for box in boxes]
        results = [f.result(timeout=120) for f in fetches]
        assert all(f.result(timeout=120) for f in logins)
    for result in results:
        assert_ok(result)
        assert result.counters.saved == 1
    assert oauth2_server.refresh_count(client.client_id) == 20
    for box in boxes:
        assert oauth2_server.refresh_count(username=box.name) == 1
        assert oauth2_server.max_concurrent_refreshes[box.name] == 1


def test_invalid_grant_pauses_only_that_mailbox_after_the_configured_count(
    fetcher: MailboxFetcher,
    oauth2_server: OAuth2TestServer,
    client_mailbox: Any,
    store: MailStore,
) -> None:
    client = oauth2_server.register_client()
    revoked, fine = client_mailbox(client), client_mailbox(client)
    breaker = MailboxCircuitBreaker(store, auth_failures_to_pause=2)
    oauth2_server.revoke_grants(revoked.name)

    def tick() -> MailboxResult:
        bad = fetcher.fetch_user(revoked.id)
        breaker.record(bad)
        good = fetcher.fetch_user(fine.id)
        assert_ok(good)
        breaker.record(good)
        return bad

    first = tick()
    assert first.error_kind is ErrorKind.AUTH
    assert "invalid_grant" in first.error
    assert f"re-authorize: run `mail-pipeline imap authorize {revoked.name}`" in first.error
    state = store.mailboxes.get(revoked.id)
    assert state is not None and state.consecutive_auth_failures == 1 and not state.paused
    tick()
    state = store.mailboxes.get(revoked.id)
    assert state is not None and state.paused
    assert set(breaker.paused()) == {revoked.id}
    other = store.mailboxes.get(fine.id)
    assert other is not None and not other.paused and other.consecutive_failures == 0


def test_an_account_not_authorized_yet_names_the_command(
    fetcher: MailboxFetcher, oauth2_server: OAuth2TestServer, client_mailbox: Any
) -> None:
    box = client_mailbox(oauth2_server.register_client(), authorize=False)
    result = fetcher.fetch_user(box.id)
    assert result.error_kind is ErrorKind.AUTH
    assert result.error == (
        f"IMAP account {box.name!r}: OAuth2 is not authorized yet: "
        f"run `mail-pipeline imap authorize {box.name}`"
    )
    assert oauth2_server.requests == []


@pytest.mark.parametrize("failure", ["down", "slow"])
def test_an_unusable_endpoint_is_retried_and_never_pauses(
    fetcher: MailboxFetcher,
    oauth2_server: OAuth2TestServer,
    client_mailbox: Any,
    store: MailStore,
    failure: str,
) -> None:
    box = client_mailbox(oauth2_server.register_client())
    box.append(1)
    breaker = MailboxCircuitBreaker(store, auth_failures_to_pause=1)
    if failure == "down":
        oauth2_server.fail_status = 500
    else:
        oauth2_server.delay = 1.0  # longer than the policy's 0.5 s timeout
        # The server still answers each request after we gave up; with strict rotation that
        # answer would rotate the refresh token we never received (the grant is then lost:
        # a provider limit no client can fix). Providers that rotate keep the old token valid.
        oauth2_server.rotate_refresh_tokens = False
    for tick in (1, 2, 3):
        result = fetcher.fetch_user(box.id)
        assert result.error_kind is ErrorKind.CONNECT
        assert "gave up after 3 attempts" in result.error
        assert ("HTTP 500" if failure == "down" else "did not answer within 0.5 s") in result.error
        deadline = time.monotonic() + 5  # a slow answer is recorded when the server is done
        while len(oauth2_server.requests) < 3 * tick and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(oauth2_server.requests) == 3 * tick  # every fetch retried, bounded
        breaker.record(result)
        state = store.mailboxes.get(box.id)
        assert state is not None and not state.paused
        assert state.consecutive_auth_failures == 0 and state.consecutive_failures == tick
    oauth2_server.fail_status, oauth2_server.delay = None, 0.0
    result = fetcher.fetch_user(box.id)
    assert_ok(result)
    assert result.counters.saved == 1


def test_oauthbearer_logs_in_with_the_refreshed_token(
    fetcher: MailboxFetcher,
    oauth2_server: OAuth2TestServer,
    client_mailbox: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    used: list[str] = []
    for name in ("oauth2_login", "oauthbearer_login"):
        original = getattr(imapclient.IMAPClient, name)

        def spy(self: Any, *args: Any, _name: str = name, _original: Any = original) -> Any:
            used.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(imapclient.IMAPClient, name, spy)
    box = client_mailbox(oauth2_server.register_client(), sasl_mechanism="oauthbearer")
    box.append(1)
    assert_ok(fetcher.fetch_user(box.id))
    xoauth = client_mailbox(oauth2_server.register_client(public=True))
    assert_ok(fetcher.fetch_user(xoauth.id))
    assert used == ["oauthbearer_login", "oauth2_login"]


def test_no_token_or_client_secret_in_clear_in_rows_logs_or_results(
    fetcher: MailboxFetcher,
    oauth2_server: OAuth2TestServer,
    client_mailbox: Any,
    store: MailStore,
    configs: EmailConfigManager,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = oauth2_server.register_client()
    box = client_mailbox(client)
    box.append(1)
    results = [fetcher.fetch_user(box.id)]
    clock.now += timedelta(hours=2)
    oauth2_server.fail_status, oauth2_server.fail_count = 500, 1
    results.append(fetcher.fetch_user(box.id))  # a refresh after one retry
    oauth2_server.revoke_grants(box.name)
    clock.now += timedelta(hours=2)
    results.append(fetcher.fetch_user(box.id))  # refused: an error message
    assert [r.error_kind for r in results] == [ErrorKind.NONE, ErrorKind.NONE, ErrorKind.AUTH]
    assert client.client_secret is not None
    with store.engine.connect() as conn:
        rows = " ".join(  # every value in full (a Row's repr cuts long strings)
            str(value)
            for table in ("settings", "oauth2_grants", "mailbox_state", "email_tasks")
            for row in conn.exec_driver_sql(f"SELECT * FROM {table}").fetchall()
            for value in row
        )
    shown = str(configs.masked_config(configs.get_email_config(box.id)))
    # the rows are all there: the sealed secret, the grant's tokens and the client id
    assert rows.count("fernet:v1:") >= 3 and client.client_id in rows
    _secrets_absent(
        oauth2_server,
        rows,
        caplog.text,
        shown,
        " ".join(f"{r.error} {r.summary()} {r!r}" for r in results),
    )
