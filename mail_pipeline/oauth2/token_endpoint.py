"""One refresh-token request to an OAuth2 token endpoint, and what its failure means.

The protocol is authlib's (``authlib.integrations.requests_client.OAuth2Session.refresh_token``:
``grant_type=refresh_token``, ``client_secret_basic`` with a secret, the bare ``client_id`` for
a public client, parsing of the answer and of OAuth2 error answers). authlib and requests are
imported on the first refresh, not with this module.

Failures are classified for the circuit breaker:

- the endpoint refused the grant or the client (``invalid_grant``, ``invalid_client``,
  ``unauthorized_client``, any other OAuth2 error, or a 4xx answer that is not one) is
  :class:`~mail_pipeline.errors.OAuth2GrantError`, an authentication failure of that mailbox
  whose message names ``mail-pipeline imap authorize <user>``;
- the endpoint unreachable, too slow (``timeout``), HTTP 408, 429 or 5xx, or an answer without
  an access token is :class:`~mail_pipeline.errors.OAuth2EndpointError` (transient).

No message ever contains a token or the client secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mail_pipeline.errors import OAuth2EndpointError, OAuth2GrantError

if TYPE_CHECKING:
    import requests

__all__ = [
    "DEFAULT_ENDPOINT_TIMEOUT",
    "RefreshedToken",
    "TransientStatusError",
    "reauthorize_hint",
    "refresh_access_token",
]

#: Seconds one request to the token endpoint may take (connect and read).
DEFAULT_ENDPOINT_TIMEOUT = 10.0

#: HTTP statuses that mean "try again later".
_TRANSIENT_STATUSES = frozenset({408, 425, 429})

#: OAuth2 error codes of a grant or client the provider no longer accepts.
_GRANT_ERRORS = {
    "invalid_grant": "the refresh token was revoked or has expired",
    "invalid_client": "the client id or client secret was refused",
    "unauthorized_client": "the client may not use the refresh-token grant",
}


@dataclass(frozen=True)
class RefreshedToken:
    """A successful refresh: the access token, its lifetime in seconds (None when the
    provider did not say) and the refresh token to keep (the rotated one, or the one sent)."""

    access_token: str = field(repr=False)
    expires_in: int | None
    refresh_token: str = field(repr=False)


class TransientStatusError(Exception):
    """The token endpoint answered an HTTP status that means "later" (raised by a hook)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def reauthorize_hint(username: str) -> str:
    """Return what the operator must do to give ``username``'s mailbox a new grant."""
    return f"re-authorize: run `mail-pipeline imap authorize {username}`"


def _raise_for_transient_status(response: requests.Response) -> requests.Response:
    if response.status_code in _TRANSIENT_STATUSES or response.status_code >= 500:
        raise TransientStatusError(response.status_code)
    return response


def refresh_access_token(
    *,
    username: str,
    client_id: str,
    client_secret: str | None,
    token_endpoint: str,
    refresh_token: str,
    scopes: Sequence[str] = (),
    timeout: float = DEFAULT_ENDPOINT_TIMEOUT,
) -> RefreshedToken:
    """Ask ``token_endpoint`` for a new access token with ``refresh_token`` (one request).

    ``username`` (the store user) is only used in messages. ``scopes`` are sent when given.

    Returns:
        The :class:`RefreshedToken`; its ``refresh_token`` is the rotated one when the
        provider sent one, else ``refresh_token``.

    Raises:
        OAuth2GrantError: the endpoint refused the grant or the client (re-authorize).
        OAuth2EndpointError: unreachable, timed out, HTTP 408/429/5xx, or no access token in
            the answer (transient).
    """
    import requests
    from authlib.common.errors import AuthlibBaseError
    from authlib.integrations.requests_client import OAuth2Session

    who = f"IMAP account {username!r}"
    where = f"the OAuth2 token endpoint {token_endpoint}"
    session = OAuth2Session(
        client_id,
        client_secret,
        token_endpoint_auth_method="client_secret_basic" if client_secret else "none",
    )
    session.register_compliance_hook("refresh_token_response", _raise_for_transient_status)
    extra: dict[str, Any] = {"scope": " ".join(scopes)} if scopes else {}
    try:
        with session:
            answer = session.refresh_token(
                token_endpoint, refresh_token=refresh_token, timeout=timeout, **extra
            )
    except TransientStatusError as exc:
        raise OAuth2EndpointError(f"{who}: {where} answered HTTP {exc.status}") from None
    except requests.Timeout:
        raise OAuth2EndpointError(f"{who}: {where} did not answer within {timeout:g} s") from None
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        raise OAuth2GrantError(
            f"{who}: {where} answered HTTP {status} without an OAuth2 error; check the "
            f"endpoint (mail-pipeline imap set), then {reauthorize_hint(username)}"
        ) from None
    except requests.RequestException as exc:
        raise OAuth2EndpointError(
            f"{who}: {where} cannot be reached ({type(exc).__name__})"
        ) from None
    except AuthlibBaseError as exc:
        code = str(getattr(exc, "error", "") or "error")
        reason = _GRANT_ERRORS.get(code, "the provider refused the refresh")
        raise OAuth2GrantError(
            f"{who}: {where} answered {code}: {reason}; {reauthorize_hint(username)}"
        ) from None
    except ValueError:  # not a JSON object, status < 500 (authlib's own check)
        raise OAuth2EndpointError(f"{who}: {where} answered something that is not JSON") from None
    access_token = answer.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise OAuth2EndpointError(f"{who}: {where} answered without an access token")
    expires_in = answer.get("expires_in")
    try:
        lifetime = int(expires_in) if expires_in is not None else None
    except (TypeError, ValueError):
        lifetime = None
    new_refresh = answer.get("refresh_token")
    if not isinstance(new_refresh, str) or not new_refresh:
        new_refresh = refresh_token
    return RefreshedToken(access_token, lifetime, new_refresh)
