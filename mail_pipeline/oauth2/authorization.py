"""What the two authorization flows share: the client, the token answer, the error, the
authlib session.

The OAuth2 protocol is authlib's (``authlib.integrations.requests_client.OAuth2Session``):
client authentication (``client_secret_basic`` with a secret, the bare ``client_id`` for a
public client), the authorization URL with PKCE S256, the ``state`` check of the redirect and
the parsing of token answers and of OAuth2 error answers. Chosen because it is maintained, is
already the project's library for the refresh grant, and implements RFC 6749, 7636 and 8628's
client side on top of requests; authlib and requests are imported when a flow runs, never by
``mail-pipeline --help``.

No message of this package contains a token, a code or the client secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mail_pipeline.errors import MailPipelineError

if TYPE_CHECKING:
    from authlib.integrations.requests_client import OAuth2Session

__all__ = [
    "HTTP_TIMEOUT",
    "AuthorizationFailed",
    "OAuth2Client",
    "TokenResponse",
    "new_session",
    "oauth2_error_text",
    "token_response",
]

#: Seconds one HTTP request to an OAuth2 endpoint may take.
HTTP_TIMEOUT = 30.0


class AuthorizationFailed(MailPipelineError):
    """An authorization flow ended without a refresh token.

    ``reason`` says why: ``access_denied`` (the user declined), ``expired_token`` (the device
    code expired), ``timeout`` (no answer within the time given), ``state_mismatch`` (a
    redirect that this flow did not start), ``unreachable`` (an endpoint could not be reached
    or answered with an HTTP error), ``no_refresh_token``, or the OAuth2 ``error`` code the
    provider answered (``invalid_client``, ``invalid_scope`` ...). The message says what to do.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class OAuth2Client:
    """The OAuth2 client an account is authorized with (``client_secret`` None for a public
    client) and the endpoints and scopes it asks for."""

    client_id: str
    token_endpoint: str
    scopes: tuple[str, ...] = ()
    client_secret: str | None = field(default=None, repr=False)
    device_endpoint: str | None = None
    authorize_endpoint: str | None = None
    authorize_params: tuple[tuple[str, str], ...] = ()

    @property
    def scope(self) -> str:
        """The scopes as one space-separated ``scope`` parameter."""
        return " ".join(self.scopes)


@dataclass(frozen=True)
class TokenResponse:
    """A successful token answer of an authorization flow (it always has a refresh token)."""

    refresh_token: str = field(repr=False)
    access_token: str = field(repr=False)
    expires_in: int | None = None
    scope: str | None = None
    token_type: str = "Bearer"


def new_session(client: OAuth2Client, *, redirect_uri: str | None = None) -> OAuth2Session:
    """Return an authlib session for ``client`` (PKCE S256 for the authorization URL).

    The caller closes it.
    """
    from authlib.integrations.requests_client import OAuth2Session

    return OAuth2Session(
        client_id=client.client_id,
        client_secret=client.client_secret,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        default_timeout=HTTP_TIMEOUT,
    )


def oauth2_error_text(error: object, description: object = None) -> str:
    """Return ``error`` and its description as one short line for a message (the description
    cut to 200 characters; neither holds a secret in an OAuth2 error answer)."""
    text = str(error or "error")
    if description:
        text += f" ({' '.join(str(description).split())[:200]})"
    return text


def token_response(answer: Mapping[str, Any], *, provider: str) -> TokenResponse:
    """Return the :class:`TokenResponse` of a token endpoint's JSON ``answer``.

    Raises:
        AuthorizationFailed: ``no_refresh_token`` when the answer has no refresh token (the
            scopes lack ``offline_access``, or Google did not get ``access_type=offline``), or
            ``unreachable`` when it has no access token.
    """
    refresh = answer.get("refresh_token")
    access = answer.get("access_token")
    if not isinstance(access, str) or not access:
        raise AuthorizationFailed(
            "unreachable", f"{provider}: the token endpoint answered without an access token"
        )
    if not isinstance(refresh, str) or not refresh:
        raise AuthorizationFailed(
            "no_refresh_token",
            f"{provider}: the provider granted access but returned no refresh token: ask for "
            "offline access (Microsoft: the scope offline_access; Google: access_type=offline "
            "and prompt=consent, which the gmail preset sends)",
        )
    try:
        expires: int | None = int(answer["expires_in"])
    except (KeyError, TypeError, ValueError):
        expires = None
    scope = answer.get("scope")
    return TokenResponse(
        refresh_token=refresh,
        access_token=access,
        expires_in=expires,
        scope=" ".join(scope) if isinstance(scope, list) else (scope or None),
        token_type=str(answer.get("token_type") or "Bearer"),
    )
