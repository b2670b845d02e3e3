"""One refresh request against the local authorization server, and how its failures are
classified: refused grant or client = authentication failure naming `imap authorize`; down,
slow, 5xx, 429 = transient. No message holds a token or the client secret."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from mail_pipeline.errors import ImapAuthError, OAuth2EndpointError, OAuth2GrantError
from mail_pipeline.oauth2.token_endpoint import refresh_access_token
from mail_pipeline_tests.fixtures.oauth2_server import OAuth2TestServer, TestClient


@pytest.fixture
def server() -> Iterator[OAuth2TestServer]:
    started = OAuth2TestServer(access_token_lifetime=1800)
    started.start()
    yield started
    started.stop()


def _refresh(
    server: OAuth2TestServer, client: TestClient, refresh_token: str, **options: object
) -> object:
    return refresh_access_token(
        username="alice",
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_endpoint=server.token_endpoint,
        refresh_token=refresh_token,
        **options,  # type: ignore[arg-type]
    )


def _assert_no_secret(server: OAuth2TestServer, text: str) -> None:
    for secret in server.issued_secrets():
        assert secret not in text


def test_a_refresh_returns_the_access_token_and_the_rotated_refresh_token(
    server: OAuth2TestServer,
) -> None:
    client = server.register_client()
    first = server.issue_refresh_token(client, "alice")
    refreshed = refresh_access_token(
        username="alice",
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_endpoint=server.token_endpoint,
        refresh_token=first,
        scopes=("imap",),
    )
    assert server.access_token_owner(refreshed.access_token) == "alice"
    assert refreshed.expires_in == 1800
    assert refreshed.refresh_token != first
    assert server.valid_refresh_tokens("alice") == [refreshed.refresh_token]
    assert server.refresh_count(client.client_id, "alice") == 1
    assert refreshed.access_token not in repr(refreshed)
    assert refreshed.refresh_token not in repr(refreshed)


def test_without_rotation_the_refresh_token_is_kept(server: OAuth2TestServer) -> None:
    server.rotate_refresh_tokens = False
    client = server.register_client(public=True)  # a public client sends only its id
    token = server.issue_refresh_token(client, "alice")
    refreshed = refresh_access_token(
        username="alice",
        client_id=client.client_id,
        client_secret=None,
        token_endpoint=server.token_endpoint,
        refresh_token=token,
    )
    assert refreshed.refresh_token == token
    assert server.access_token_owner(refreshed.access_token) == "alice"


def test_a_revoked_refresh_token_says_to_reauthorize(server: OAuth2TestServer) -> None:
    client = server.register_client()
    token = server.issue_refresh_token(client, "alice")
    server.fail_refresh_token(token)
    with pytest.raises(OAuth2GrantError) as caught:
        _refresh(server, client, token)
    assert isinstance(caught.value, ImapAuthError)
    message = str(caught.value)
    assert "invalid_grant" in message
    assert "re-authorize: run `mail-pipeline imap authorize alice`" in message
    _assert_no_secret(server, message)


def test_a_rotated_out_refresh_token_is_invalid_grant(server: OAuth2TestServer) -> None:
    client = server.register_client()
    token = server.issue_refresh_token(client, "alice")
    _refresh(server, client, token)
    with pytest.raises(OAuth2GrantError, match="invalid_grant"):
        _refresh(server, client, token)


def test_a_wrong_client_secret_is_invalid_client(server: OAuth2TestServer) -> None:
    client = server.register_client()
    token = server.issue_refresh_token(client, "alice")
    wrong = TestClient(client.client_id, "not-the-secret")
    with pytest.raises(OAuth2GrantError) as caught:
        _refresh(server, wrong, token)
    assert "invalid_client" in str(caught.value)
    assert "mail-pipeline imap authorize alice" in str(caught.value)
    assert "not-the-secret" not in str(caught.value)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_and_rate_limits_are_transient(server: OAuth2TestServer, status: int) -> None:
    client = server.register_client()
    token = server.issue_refresh_token(client, "alice")
    server.fail_status = status
    with pytest.raises(OAuth2EndpointError, match=f"HTTP {status}") as caught:
        _refresh(server, client, token)
    assert not isinstance(caught.value, ImapAuthError)
    _assert_no_secret(server, str(caught.value))
    # the grant is untouched: once the endpoint is back, the same token works
    server.fail_status = None
    assert _refresh(server, client, token)


def test_a_slow_endpoint_times_out_as_transient(server: OAuth2TestServer) -> None:
    client = server.register_client()
    token = server.issue_refresh_token(client, "alice")
    server.delay = 1.5
    with pytest.raises(OAuth2EndpointError, match=r"did not answer within 0.3 s"):
        _refresh(server, client, token, timeout=0.3)


def test_an_unreachable_endpoint_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(OAuth2EndpointError, match="cannot be reached"):
        refresh_access_token(
            username="alice",
            client_id="c",
            client_secret="s",
            token_endpoint=f"http://127.0.0.1:{port}/token",
            refresh_token="rt",
            timeout=2,
        )
