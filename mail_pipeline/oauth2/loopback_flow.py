"""The OAuth2 authorization code flow of installed apps with a loopback redirect (RFC 8252).

:func:`run_loopback_flow` listens once on ``http://127.0.0.1:<free port>/`` (RFC 8252 §7.3),
builds the authorization URL with PKCE S256 (RFC 7636) and a fresh ``state``, hands it to
``show`` and to a browser, and waits until the browser comes back: a redirect with a
``code`` and the right ``state`` is exchanged at the token endpoint (with the code verifier);
``error=...`` (the user declined: ``access_denied``), a redirect with another ``state`` or no
redirect within ``timeout`` seconds ends the flow with
:class:`~mail_pipeline.oauth2.authorization.AuthorizationFailed`. The listener binds to
127.0.0.1 only and is closed before the function returns.

The URL, PKCE and the token request are authlib's (:mod:`mail_pipeline.oauth2.authorization`).
No Click, no Dagster; no code, token or secret in any message.
"""

from __future__ import annotations

import contextlib
import secrets
import socketserver
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

from mail_pipeline.oauth2.authorization import (
    HTTP_TIMEOUT,
    AuthorizationFailed,
    OAuth2Client,
    TokenResponse,
    new_session,
    oauth2_error_text,
    token_response,
)

__all__ = ["LoopbackRedirect", "run_loopback_flow"]

#: The address the redirect listener binds: the IPv4 loopback, never a public interface.
LOOPBACK_HOST = "127.0.0.1"

_DONE_PAGE = (
    "<!doctype html><title>mail-pipeline</title><p>{text}</p>"
    "<p>You can close this window and return to the terminal.</p>"
)


@dataclass
class LoopbackRedirect:
    """What the browser brought back to the listener (at most one of code and error)."""

    state: str | None = None
    code: str | None = None
    error: str | None = None
    error_description: str | None = None


class _Listener(HTTPServer):
    """A one-shot redirect listener: it keeps the first redirect that carries an answer."""

    redirect: LoopbackRedirect | None = None

    def server_bind(self) -> None:
        """Bind without :class:`HTTPServer`'s reverse DNS lookup of the address."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = LOOPBACK_HOST, self.server_address[1]


class _Handler(BaseHTTPRequestHandler):
    server: _Listener
    #: Seconds a connection may take to send its request: a silent one cannot hold the wait.
    timeout = 5.0

    def do_GET(self) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if self.server.redirect is not None or not ({"code", "error"} & query.keys()):
            # A favicon, a prefetch, a second visit: not the answer.
            self._page(404, "Nothing here: the authorization is handled elsewhere.")
            return
        self.server.redirect = LoopbackRedirect(
            state=query.get("state"),
            code=query.get("code"),
            error=query.get("error"),
            error_description=query.get("error_description"),
        )
        if "code" in query:
            self._page(200, "The authorization was received by mail_pipeline.")
        else:
            self._page(400, f"The authorization was not granted ({query.get('error')}).")

    def _page(self, status: int, text: str) -> None:
        body = _DONE_PAGE.format(text=text.replace("<", "&lt;")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Log nothing: the query holds the authorization code."""


def _wait_for_redirect(listener: _Listener, timeout: float) -> LoopbackRedirect | None:
    """Serve requests until one brings an answer or ``timeout`` seconds passed; return it or
    None."""
    deadline = time.monotonic() + timeout
    while listener.redirect is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        listener.timeout = min(remaining, 1.0)
        listener.handle_request()
    return listener.redirect


def run_loopback_flow(
    client: OAuth2Client,
    *,
    show: Callable[[str], None],
    timeout: float,
    open_browser: Callable[[str], object] | None = webbrowser.open,
    port: int = 0,
) -> TokenResponse:
    """Run the loopback authorization code flow with PKCE for ``client``.

    ``show`` gets the authorization URL (to print); ``open_browser`` (None: do not) is called
    with it too, and a browser that cannot be opened is not an error. The listener takes
    ``port`` on 127.0.0.1 (0: a free port; a fixed one lets an SSH tunnel reach it).

    Returns:
        The token answer with its refresh token.

    Raises:
        ValueError: ``timeout`` is not positive.
        OSError: ``port`` cannot be bound (in use).
        AuthorizationFailed: ``access_denied`` or another ``error`` the provider redirected
            with, ``state_mismatch``, ``timeout``, ``unreachable`` (the token endpoint), an
            OAuth2 error of the token endpoint (``invalid_grant`` ...), ``no_refresh_token``.
    """
    import requests
    from authlib.common.security import generate_token
    from authlib.integrations.base_client import OAuthError

    if not timeout > 0:
        raise ValueError("timeout must be positive")
    if not client.authorize_endpoint:
        raise AuthorizationFailed("invalid_request", "the account has no authorization endpoint")
    listener = _Listener((LOOPBACK_HOST, port), _Handler)
    try:
        redirect_uri = f"http://{LOOPBACK_HOST}:{listener.server_address[1]}/"
        with new_session(client, redirect_uri=redirect_uri) as session:
            verifier = generate_token(64)  # RFC 7636 §4.1: 43 to 128 unreserved characters
            url, state = session.create_authorization_url(
                client.authorize_endpoint,
                code_verifier=verifier,
                scope=client.scope,
                **dict(client.authorize_params),
            )
            show(url)
            if open_browser is not None:
                # No browser on this machine is not an error: the URL is printed.
                with contextlib.suppress(Exception):
                    open_browser(url)
            redirect = _wait_for_redirect(listener, timeout)
            if redirect is None:
                raise AuthorizationFailed(
                    "timeout",
                    f"no answer from the browser within {timeout:g} s: nothing was stored; "
                    "open the URL on this machine (the redirect goes to 127.0.0.1) and run "
                    "the command again",
                )
            if redirect.state is None or not secrets.compare_digest(redirect.state, state):
                raise AuthorizationFailed(
                    "state_mismatch",
                    "the browser came back with another state than this authorization's "
                    "(an old or forged redirect): nothing was stored; run the command again",
                )
            if redirect.error is not None or not redirect.code:
                error = redirect.error or "invalid_request"
                what = "declined" if error == "access_denied" else "refused"
                raise AuthorizationFailed(
                    error,
                    f"the authorization was {what}: "
                    f"{oauth2_error_text(error, redirect.error_description)}: nothing was "
                    "stored",
                )
            try:
                answer = session.fetch_token(
                    client.token_endpoint,
                    grant_type="authorization_code",
                    code=redirect.code,
                    code_verifier=verifier,
                    redirect_uri=redirect_uri,
                    timeout=HTTP_TIMEOUT,
                )
            except OAuthError as exc:
                raise AuthorizationFailed(
                    str(exc.error),
                    "the token endpoint refused the authorization code: "
                    f"{oauth2_error_text(exc.error, exc.description)}",
                ) from None
            except requests.RequestException as exc:
                status = getattr(exc.response, "status_code", None)
                raise AuthorizationFailed(
                    "unreachable",
                    f"cannot exchange the code at {client.token_endpoint}: "
                    f"{f'HTTP {status}' if status else type(exc).__name__}: nothing was stored",
                ) from None
            return token_response(answer, provider=client.token_endpoint)
    finally:
        listener.server_close()
