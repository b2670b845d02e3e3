"""The device authorization grant (RFC 8628) against the local OAuth2 test server: approval
in another thread gives a working refresh token; pending, slow_down and HTTP 5xx keep polling;
access_denied, expired_token, a timeout and an unreachable endpoint end it with the reason,
and no message carries a code, token or secret."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from mail_pipeline.oauth2.authorization import AuthorizationFailed, OAuth2Client, new_session
from mail_pipeline.oauth2.device_flow import (
    DeviceCode,
    poll_for_token,
    request_device_code,
    run_device_flow,
)
from mail_pipeline_tests.fixtures.oauth2_server import OAuth2TestServer, TestClient


@pytest.fixture
def server() -> Iterator[OAuth2TestServer]:
    """An authorization server without Dovecot (the flows need none)."""
    server = OAuth2TestServer(device_interval=0.05)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def client_of(server: OAuth2TestServer, registered: TestClient) -> OAuth2Client:
    return OAuth2Client(
        client_id=registered.client_id,
        client_secret=registered.client_secret,
        token_endpoint=server.token_endpoint,
        device_endpoint=server.device_endpoint,
        scopes=("imap", "offline_access"),
    )


def approve_when_shown(
    server: OAuth2TestServer, username: str, *, deny: bool = False
) -> Callable[[DeviceCode], None]:
    """A ``show`` that approves (or denies) the shown user code from another thread, as a
    user at a browser would, after a few polls."""

    def show(code: DeviceCode) -> None:
        def act() -> None:
            time.sleep(0.2)  # the flow is polling by now
            if deny:
                server.deny(code.user_code)
            else:
                server.approve(code.user_code, username)

        threading.Thread(target=act, daemon=True).start()

    return show


def refresh(server: OAuth2TestServer, registered: TestClient, refresh_token: str) -> int:
    """POST a refresh_token grant; return the HTTP status (200: the token works)."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    form["client_id"] = registered.client_id
    if registered.client_secret:
        form["client_secret"] = registered.client_secret
    request = urllib.request.Request(
        server.token_endpoint, data=urllib.parse.urlencode(form).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            json.load(answer)
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("public", [True, False], ids=["public-client", "confidential-client"])
def test_an_approved_code_gives_a_working_refresh_token(
    server: OAuth2TestServer, public: bool
) -> None:
    registered = server.register_client(public=public)
    shown: list[DeviceCode] = []
    approve = approve_when_shown(server, "alice")

    def show(code: DeviceCode) -> None:
        shown.append(code)
        assert code.user_code in server.pending_user_codes()  # shown before any token
        approve(code)

    token = run_device_flow(client_of(server, registered), show=show, timeout=10)

    (code,) = shown
    assert code.verification_uri == server.verification_uri
    assert code.verification_uri_complete and code.user_code in code.verification_uri_complete
    assert server.access_token_owner(token.access_token) == "alice"
    assert token.refresh_token in server.valid_refresh_tokens("alice")
    assert refresh(server, registered, token.refresh_token) == 200
    grants = [r for r in server.requests if r.grant_type.endswith("device_code")]
    assert {r.error for r in grants[:-1]} == {"authorization_pending"}  # polled, then granted
    assert grants[-1].status == 200
    assert "access_token" not in repr(token) and token.refresh_token not in repr(token)


def test_slow_down_adds_to_the_interval(server: OAuth2TestServer) -> None:
    registered = server.register_client(public=True)
    client = client_of(server, registered)
    server.device_interval = 0.3
    waits: list[float] = []
    with new_session(client) as session:
        code = request_device_code(session, client)
        fast = dataclasses.replace(code, interval=0.01)  # polls too fast: slow_down
        approve_when_shown(server, "bob")(code)

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            time.sleep(seconds)

        token = poll_for_token(session, client, fast, timeout=10, sleep=sleep, slow_down_step=0.3)
    assert server.access_token_owner(token.access_token) == "bob"
    errors = [r.error for r in server.requests]
    # The first poll is pending, the second comes too soon: slow_down, then 0.3 s more.
    assert errors[:2] == ["authorization_pending", "slow_down"]
    assert waits[:3] == pytest.approx([0.01, 0.01, 0.31])


def test_http_500_backs_off_and_the_flow_still_succeeds(server: OAuth2TestServer) -> None:
    registered = server.register_client(public=True)
    server.fail_status, server.fail_count = 500, 2
    token = run_device_flow(
        client_of(server, registered), show=approve_when_shown(server, "carol"), timeout=20
    )
    assert server.access_token_owner(token.access_token) == "carol"
    assert [r.status for r in server.requests][:2] == [500, 500]


def assert_clean(exc: AuthorizationFailed, server: OAuth2TestServer) -> None:
    """The message names no secret the server ever issued."""
    text = str(exc)
    assert [s for s in server.issued_secrets() if s in text] == []


def test_access_denied_ends_the_flow(server: OAuth2TestServer) -> None:
    registered = server.register_client()
    with pytest.raises(AuthorizationFailed) as caught:
        run_device_flow(
            client_of(server, registered),
            show=approve_when_shown(server, "", deny=True),
            timeout=10,
        )
    assert caught.value.reason == "access_denied"
    assert "declined" in str(caught.value) and "nothing was stored" in str(caught.value)
    assert_clean(caught.value, server)
    assert server.valid_refresh_tokens("") == []


def test_an_expired_code_ends_the_flow(server: OAuth2TestServer) -> None:
    registered = server.register_client(public=True)

    def show(_code: DeviceCode) -> None:
        server.expire_device_codes()

    with pytest.raises(AuthorizationFailed) as caught:
        run_device_flow(client_of(server, registered), show=show, timeout=10)
    assert caught.value.reason == "expired_token"
    assert "expired before it was entered" in str(caught.value)
    assert_clean(caught.value, server)


def test_the_codes_own_lifetime_ends_the_flow_as_expired(server: OAuth2TestServer) -> None:
    registered = server.register_client(public=True)
    server.device_code_lifetime = 1
    started = time.monotonic()
    with pytest.raises(AuthorizationFailed) as caught:
        run_device_flow(client_of(server, registered), show=lambda _c: None, timeout=60)
    assert caught.value.reason == "expired_token"
    assert time.monotonic() - started < 30  # the code's lifetime, not the timeout


def test_nobody_entering_the_code_times_out(server: OAuth2TestServer) -> None:
    registered = server.register_client(public=True)
    shown: list[DeviceCode] = []
    with pytest.raises(AuthorizationFailed) as caught:
        run_device_flow(client_of(server, registered), show=shown.append, timeout=0.5)
    assert caught.value.reason == "timeout"
    assert f"the code {shown[0].user_code} was not entered" in str(caught.value)
    assert_clean(caught.value, server)


def test_an_unknown_client_is_refused_by_the_device_endpoint(server: OAuth2TestServer) -> None:
    client = OAuth2Client(
        client_id="nobody",
        token_endpoint=server.token_endpoint,
        device_endpoint=server.device_endpoint,
    )
    with pytest.raises(AuthorizationFailed) as caught:
        run_device_flow(client, show=lambda _c: None, timeout=5)
    assert caught.value.reason == "invalid_client"
    assert "unknown client" in str(caught.value)


def test_a_token_endpoint_that_is_down_is_reported_as_unreachable(
    server: OAuth2TestServer,
) -> None:
    registered = server.register_client(public=True)
    down = dataclasses.replace(
        client_of(server, registered), token_endpoint="http://127.0.0.1:9/token"
    )
    with pytest.raises(AuthorizationFailed) as caught:
        run_device_flow(down, show=lambda _c: None, timeout=1)
    assert caught.value.reason == "unreachable"
    assert "kept failing (ConnectionError)" in str(caught.value)
    with pytest.raises(AuthorizationFailed) as caught:
        run_device_flow(
            dataclasses.replace(down, device_endpoint="http://127.0.0.1:9/device"),
            show=lambda _c: None,
            timeout=1,
        )
    assert caught.value.reason == "unreachable"
