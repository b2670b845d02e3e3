"""The loopback authorization code flow (RFC 8252, PKCE S256) against the local OAuth2 test
server: a thread plays the browser (urllib follows the authorization URL and its redirect
to the one-shot listener on 127.0.0.1); a declined consent, a forged state and no answer end
the flow with the reason and nothing issued."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from mail_pipeline.oauth2.authorization import AuthorizationFailed, OAuth2Client
from mail_pipeline.oauth2.loopback_flow import run_loopback_flow
from mail_pipeline_tests.fixtures.oauth2_server import OAuth2TestServer, TestClient


@pytest.fixture
def server() -> Iterator[OAuth2TestServer]:
    """An authorization server without Dovecot (the flows need none)."""
    server = OAuth2TestServer()
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
        authorize_endpoint=server.authorize_endpoint,
        scopes=("imap",),
        authorize_params=(("access_type", "offline"), ("prompt", "consent")),
    )


def get(url: str) -> int:
    """GET ``url`` following redirects; return the final HTTP status."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


class Browser:
    """An ``open_browser`` that visits URLs from a thread, as a user's browser would."""

    def __init__(self, visit: Callable[[str], list[int]]) -> None:
        self.visit = visit
        self.statuses: list[int] = []
        self.threads: list[threading.Thread] = []

    def __call__(self, url: str) -> bool:
        thread = threading.Thread(target=lambda: self.statuses.extend(self.visit(url)))
        thread.start()
        self.threads.append(thread)
        return True

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=10)


def redirect_uri_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["redirect_uri"][0]


def test_the_browser_returning_a_code_gives_a_working_grant(server: OAuth2TestServer) -> None:
    registered = server.register_client()
    server.authorize_username = "alice"
    shown: list[str] = []

    def visit(url: str) -> list[int]:
        # A favicon request first: not the answer, the listener keeps waiting.
        return [get(redirect_uri_of(url) + "favicon.ico"), get(url)]

    browser = Browser(visit)
    token = run_loopback_flow(
        client_of(server, registered), show=shown.append, timeout=10, open_browser=browser
    )
    browser.join()

    assert browser.statuses == [404, 200]
    assert server.access_token_owner(token.access_token) == "alice"
    assert token.refresh_token in server.valid_refresh_tokens("alice")
    (url,) = shown
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
    assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
    assert query["scope"] == ["imap"] and len(query["state"][0]) >= 20
    redirect = urlsplit(query["redirect_uri"][0])
    assert redirect.scheme == "http" and redirect.hostname == "127.0.0.1"
    # The listener is closed once the flow is over.
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", redirect.port), 1):
        pass
    (grant,) = [r for r in server.requests if r.grant_type == "authorization_code"]
    assert grant.status == 200  # the server checked the PKCE verifier and the redirect_uri


def test_a_declined_consent_ends_the_flow(server: OAuth2TestServer) -> None:
    registered = server.register_client(public=True)
    server.authorize_error = "access_denied"
    browser = Browser(lambda url: [get(url)])
    with pytest.raises(AuthorizationFailed) as caught:
        run_loopback_flow(
            client_of(server, registered), show=lambda _u: None, timeout=10, open_browser=browser
        )
    browser.join()
    assert caught.value.reason == "access_denied"
    assert "the authorization was declined: access_denied" in str(caught.value)
    assert browser.statuses == [400]
    assert [r for r in server.requests if r.grant_type == "authorization_code"] == []


def test_a_redirect_with_another_state_is_refused(server: OAuth2TestServer) -> None:
    registered = server.register_client(public=True)
    server.authorize_username = "alice"

    def forge(url: str) -> list[int]:
        return [get(redirect_uri_of(url) + "?code=stolen&state=not-the-one")]

    browser = Browser(forge)
    with pytest.raises(AuthorizationFailed) as caught:
        run_loopback_flow(
            client_of(server, registered), show=lambda _u: None, timeout=10, open_browser=browser
        )
    browser.join()
    assert caught.value.reason == "state_mismatch"
    assert "stolen" not in str(caught.value)
    assert [r for r in server.requests if r.grant_type == "authorization_code"] == []


def test_no_answer_times_out_and_a_failing_browser_is_not_an_error(
    server: OAuth2TestServer,
) -> None:
    registered = server.register_client(public=True)

    def no_browser(_url: str) -> bool:
        raise OSError("no browser here")

    with pytest.raises(AuthorizationFailed) as caught:
        run_loopback_flow(
            client_of(server, registered),
            show=lambda _u: None,
            timeout=0.5,
            open_browser=no_browser,
        )
    assert caught.value.reason == "timeout"
    assert "no answer from the browser within 0.5 s" in str(caught.value)


def test_a_code_the_token_endpoint_refuses_is_reported(server: OAuth2TestServer) -> None:
    registered = server.register_client()
    server.authorize_username = "alice"
    wrong = OAuth2Client(
        client_id=registered.client_id,
        client_secret="not-the-secret",
        token_endpoint=server.token_endpoint,
        authorize_endpoint=server.authorize_endpoint,
    )
    browser = Browser(lambda url: [get(url)])
    with pytest.raises(AuthorizationFailed) as caught:
        run_loopback_flow(wrong, show=lambda _u: None, timeout=10, open_browser=browser)
    browser.join()
    assert caught.value.reason == "invalid_client"
    assert "not-the-secret" not in str(caught.value)
    assert [s for s in server.issued_secrets() if s in str(caught.value)] == []
