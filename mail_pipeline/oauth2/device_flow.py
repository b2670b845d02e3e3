"""The OAuth2 device authorization grant (RFC 8628): a code to enter on any device.

:func:`run_device_flow` asks the device endpoint for a device code and a user code, hands
them to ``show`` (the command line prints the URL and the code), then polls the token
endpoint every ``interval`` seconds until the user approves: ``authorization_pending`` keeps
polling, ``slow_down`` adds 5 seconds to the interval (RFC 8628 §3.5), a connection error or
an HTTP 5xx backs off exponentially; ``access_denied``, ``expired_token``, any other OAuth2
error and the deadline end the flow with
:class:`~mail_pipeline.oauth2.authorization.AuthorizationFailed`.

The HTTP requests, client authentication and error parsing are authlib's
(:mod:`mail_pipeline.oauth2.authorization`). No Click, no Dagster; no token, device code or
secret in any message.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mail_pipeline.oauth2.authorization import (
    HTTP_TIMEOUT,
    AuthorizationFailed,
    OAuth2Client,
    TokenResponse,
    new_session,
    oauth2_error_text,
    token_response,
)

if TYPE_CHECKING:
    from authlib.integrations.requests_client import OAuth2Session

__all__ = [
    "DEVICE_CODE_GRANT_TYPE",
    "DeviceCode",
    "poll_for_token",
    "request_device_code",
    "run_device_flow",
]

DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"

#: The polling interval when the device endpoint names none (RFC 8628 §3.2).
DEFAULT_INTERVAL = 5.0
#: Seconds ``slow_down`` adds to the interval (RFC 8628 §3.5).
SLOW_DOWN_STEP = 5.0
#: The longest wait between two polls after connection errors.
MAX_BACKOFF = 60.0


@dataclass(frozen=True)
class DeviceCode:
    """A device authorization: what the user enters where, and how long it is valid.

    ``verification_uri_complete`` (the URL with the code in it) is given by some providers
    only; ``message`` is the provider's own instruction (Microsoft sends one).
    """

    user_code: str
    verification_uri: str
    expires_in: float
    interval: float
    device_code: str = field(repr=False)
    verification_uri_complete: str | None = None
    message: str | None = None


def _seconds(value: object, default: float) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return seconds if math.isfinite(seconds) and seconds > 0 else default


def request_device_code(session: OAuth2Session, client: OAuth2Client) -> DeviceCode:
    """Ask ``client.device_endpoint`` for a device authorization (RFC 8628 §3.1).

    Returns:
        The :class:`DeviceCode` (Google's ``verification_url`` is read as the URI).

    Raises:
        AuthorizationFailed: the endpoint is unreachable, answers an HTTP error or an OAuth2
            error (``invalid_client``, ``invalid_scope`` ...), or an answer without the codes.
    """
    import requests

    if not client.device_endpoint:
        raise AuthorizationFailed("invalid_request", "the account has no device endpoint")
    method = session.token_endpoint_auth_method
    data = {"scope": client.scope}
    if method != "none":  # "none" puts the client_id in the body itself
        data["client_id"] = client.client_id
    try:
        response = session.post(
            client.device_endpoint,
            data=data,
            auth=session.client_auth(method),
            headers={"Accept": "application/json"},
            withhold_token=True,
            timeout=HTTP_TIMEOUT,
        )
    except requests.RequestException as exc:
        raise AuthorizationFailed(
            "unreachable",
            f"cannot reach the device endpoint {client.device_endpoint}: {type(exc).__name__}",
        ) from None
    try:
        answer: Any = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise AuthorizationFailed(
            "unreachable",
            f"the device endpoint {client.device_endpoint} answered HTTP "
            f"{response.status_code} without a JSON object",
        )
    if "error" in answer or response.status_code >= 400:
        error = str(answer.get("error") or f"http_{response.status_code}")
        raise AuthorizationFailed(
            error,
            f"the device endpoint refused the request: "
            f"{oauth2_error_text(error, answer.get('error_description'))}",
        )
    uri = answer.get("verification_uri") or answer.get("verification_url")
    device_code, user_code = answer.get("device_code"), answer.get("user_code")
    if not all(isinstance(v, str) and v for v in (uri, device_code, user_code)):
        raise AuthorizationFailed(
            "unreachable",
            "the device endpoint's answer lacks device_code, user_code or verification_uri",
        )
    complete = answer.get("verification_uri_complete")
    message = answer.get("message")
    return DeviceCode(
        user_code=str(user_code),
        verification_uri=str(uri),
        expires_in=_seconds(answer.get("expires_in"), 900.0),
        interval=_seconds(answer.get("interval"), DEFAULT_INTERVAL),
        device_code=str(device_code),
        verification_uri_complete=complete if isinstance(complete, str) and complete else None,
        message=message if isinstance(message, str) and message else None,
    )


def poll_for_token(
    session: OAuth2Session,
    client: OAuth2Client,
    code: DeviceCode,
    *,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    slow_down_step: float = SLOW_DOWN_STEP,
) -> TokenResponse:
    """Poll the token endpoint with the device code until the user approved it, the code
    expired or ``timeout`` seconds passed (RFC 8628 §3.4, §3.5).

    Returns:
        The token answer with its refresh token.

    Raises:
        AuthorizationFailed: ``access_denied``, ``expired_token`` (the provider's or the
            code's lifetime passed), ``timeout`` (``timeout`` passed first), ``unreachable``
            (the endpoint failed until the deadline), ``no_refresh_token``, or another OAuth2
            error code of the provider.
    """
    import requests
    from authlib.integrations.base_client import OAuthError

    started = clock()
    expires_at = started + code.expires_in
    deadline = min(started + timeout, expires_at)
    interval = code.interval
    backoff = interval
    last_problem: str | None = None
    where = f"at {code.verification_uri}"
    while True:
        wait = backoff if last_problem else interval
        if clock() + wait > deadline:
            break
        sleep(wait)
        try:
            answer = session.fetch_token(
                client.token_endpoint,
                grant_type=DEVICE_CODE_GRANT_TYPE,
                device_code=code.device_code,
                timeout=HTTP_TIMEOUT,
            )
        except OAuthError as exc:
            last_problem, backoff = None, interval
            if exc.error == "authorization_pending":
                continue
            if exc.error == "slow_down":
                interval += slow_down_step
                continue
            if exc.error == "access_denied":
                raise AuthorizationFailed(
                    "access_denied",
                    f"the authorization was declined {where} (code {code.user_code}): "
                    "nothing was stored; run the command again to retry",
                ) from None
            if exc.error == "expired_token":
                raise AuthorizationFailed(
                    "expired_token",
                    f"the code {code.user_code} expired before it was entered {where}: "
                    "nothing was stored; run the command again for a new code",
                ) from None
            raise AuthorizationFailed(
                str(exc.error),
                "the token endpoint refused the device code: "
                f"{oauth2_error_text(exc.error, exc.description)}",
            ) from None
        except requests.RequestException as exc:  # down, timed out, HTTP 5xx: back off
            status = getattr(exc.response, "status_code", None)
            last_problem = f"HTTP {status}" if status else type(exc).__name__
            backoff = min(max(backoff * 2, interval), MAX_BACKOFF)
            continue
        return token_response(answer, provider=client.token_endpoint)
    if last_problem is not None:
        raise AuthorizationFailed(
            "unreachable",
            f"the token endpoint {client.token_endpoint} kept failing ({last_problem}) until "
            "the code's time was up: nothing was stored; run the command again",
        )
    if deadline >= expires_at:
        raise AuthorizationFailed(
            "expired_token",
            f"the code {code.user_code} expired before it was entered {where}: nothing was "
            "stored; run the command again for a new code",
        )
    raise AuthorizationFailed(
        "timeout",
        f"the code {code.user_code} was not entered {where} within {timeout:g} s: nothing "
        "was stored; run the command again and allow more time",
    )


def run_device_flow(
    client: OAuth2Client,
    *,
    show: Callable[[DeviceCode], None],
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    slow_down_step: float = SLOW_DOWN_STEP,
) -> TokenResponse:
    """Run the whole device authorization grant for ``client``: get a code, ``show`` it,
    poll until the user approved.

    Returns:
        The token answer with its refresh token.

    Raises:
        ValueError: ``timeout`` is not positive.
        AuthorizationFailed: see :func:`request_device_code` and :func:`poll_for_token`.
    """
    if not timeout > 0:
        raise ValueError("timeout must be positive")
    with new_session(client) as session:
        code = request_device_code(session, client)
        show(code)
        return poll_for_token(
            session, client, code, timeout=timeout, sleep=sleep, slow_down_step=slow_down_step
        )
