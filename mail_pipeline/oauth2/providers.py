"""OAuth2 provider presets: the IMAP server and OAuth2 endpoints of Gmail and Microsoft 365.

A preset is data only: ``mail-pipeline imap set USER --provider gmail|microsoft365`` copies
its fields into the account's ``imap_config`` (:func:`preset_fields`), and any field given
on the command line as well wins (a sovereign Microsoft cloud, a test server). A custom
provider sets every field itself.

Sources (checked 2026-12):

- Gmail: IMAP at ``imap.gmail.com:993`` over TLS, SASL XOAUTH2 with the scope
  ``https://mail.google.com/`` (Google, "OAuth 2.0 Mechanism",
  https://developers.google.com/workspace/gmail/imap/xoauth2-protocol, and "IMAP, POP, and
  SMTP", https://developers.google.com/workspace/gmail/imap/imap-smtp); Gmail's IMAP server
  also lists ``AUTH=OAUTHBEARER`` (RFC 7628). Endpoints from Google's "OAuth 2.0 for Mobile &
  Desktop Apps" (https://developers.google.com/identity/protocols/oauth2/native-app), which
  also says a command-line tool uses the loopback redirect: Google's device flow ("OAuth 2.0
  for TV and Limited-Input Device Applications", its "Allowed scopes") does not allow the mail
  scope, so a Gmail account is authorized with the loopback flow.
- Microsoft 365: IMAP at ``outlook.office365.com:993`` over TLS, SASL XOAUTH2, the scopes
  ``https://outlook.office.com/IMAP.AccessAsUser.All`` and ``offline_access`` (for a refresh
  token) ("Authenticate an IMAP, POP or SMTP connection using OAuth",
  https://learn.microsoft.com/en-us/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth);
  the endpoints under ``https://login.microsoftonline.com/<tenant>/oauth2/v2.0/`` with the
  device authorization grant at ``devicecode`` ("Microsoft identity platform and the OAuth
  2.0 device authorization grant flow",
  https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-device-code).

No Click, no Dagster: the command line wires this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mail_pipeline.errors import ConfigError

__all__ = [
    "GMAIL",
    "MICROSOFT365",
    "PRESETS",
    "AuthorizationFlow",
    "ProviderPreset",
    "default_flow",
    "microsoft365",
    "preset",
    "preset_fields",
]

#: The tenant of a Microsoft 365 preset when none is given: any work or school account, and
#: personal Microsoft accounts.
DEFAULT_TENANT = "common"

#: A tenant is ``common``, ``organizations``, ``consumers``, a directory GUID or a domain.
_TENANT = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253}[A-Za-z0-9])?$")


class AuthorizationFlow(StrEnum):
    """How ``mail-pipeline imap authorize`` obtains the first refresh token."""

    #: RFC 8628 device authorization grant: a URL and a code to enter on any device.
    DEVICE = "device"
    #: RFC 8252 loopback redirect: a browser on this machine returns to 127.0.0.1.
    LOOPBACK = "loopback"


@dataclass(frozen=True)
class ProviderPreset:
    """The fixed settings of one OAuth2 mail provider.

    ``sasl_mechanisms`` are the SASL mechanisms its IMAP server offers, the first being the
    default; ``authorize_params`` are extra parameters of its authorization request (Google
    returns a refresh token to a loopback client only with ``access_type=offline``);
    ``device_flow_scopes_allowed`` is False when its device flow refuses the mail scope.
    """

    name: str
    title: str
    imap_host: str
    imap_port: int
    security: str
    sasl_mechanisms: tuple[str, ...]
    token_endpoint: str
    authorize_endpoint: str
    device_endpoint: str
    scopes: tuple[str, ...]
    flow: AuthorizationFlow
    authorize_params: tuple[tuple[str, str], ...] = ()
    device_flow_scopes_allowed: bool = True

    @property
    def sasl_mechanism(self) -> str:
        """The default SASL mechanism (``xoauth2``)."""
        return self.sasl_mechanisms[0]


GMAIL = ProviderPreset(
    name="gmail",
    title="Gmail / Google Workspace",
    imap_host="imap.gmail.com",
    imap_port=993,
    security="ssl",
    sasl_mechanisms=("xoauth2", "oauthbearer"),
    token_endpoint="https://oauth2.googleapis.com/token",
    authorize_endpoint="https://accounts.google.com/o/oauth2/v2/auth",
    device_endpoint="https://oauth2.googleapis.com/device/code",
    scopes=("https://mail.google.com/",),
    flow=AuthorizationFlow.LOOPBACK,
    authorize_params=(("access_type", "offline"), ("prompt", "consent")),
    device_flow_scopes_allowed=False,
)


def microsoft365(tenant: str = DEFAULT_TENANT) -> ProviderPreset:
    """Return the Microsoft 365 preset for ``tenant`` (``common``, ``organizations``,
    ``consumers``, a directory ID or a verified domain).

    Raises:
        ConfigError: ``tenant`` is not a tenant name (it becomes part of a URL path).
    """
    if not _TENANT.match(tenant):
        raise ConfigError(
            f"tenant {tenant!r} is not a tenant name: use common, organizations, consumers, "
            "the directory (tenant) ID or a domain of the tenant"
        )
    base = f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0"
    return ProviderPreset(
        name="microsoft365",
        title="Microsoft 365 / Exchange Online",
        imap_host="outlook.office365.com",
        imap_port=993,
        security="ssl",
        sasl_mechanisms=("xoauth2",),
        token_endpoint=f"{base}/token",
        authorize_endpoint=f"{base}/authorize",
        device_endpoint=f"{base}/devicecode",
        scopes=("https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"),
        flow=AuthorizationFlow.DEVICE,
    )


MICROSOFT365 = microsoft365()

#: The presets by name (``--provider``), Microsoft 365 with the default tenant.
PRESETS: dict[str, ProviderPreset] = {GMAIL.name: GMAIL, MICROSOFT365.name: MICROSOFT365}


def preset(name: str, *, tenant: str | None = None) -> ProviderPreset:
    """Return the preset called ``name``, for ``tenant`` when the provider has tenants.

    Raises:
        ConfigError: no such preset; a tenant for a provider without tenants; a malformed
            tenant.
    """
    if name not in PRESETS:
        raise ConfigError(f"no provider preset {name!r}: use one of {', '.join(PRESETS)}")
    if name == MICROSOFT365.name:
        return microsoft365(DEFAULT_TENANT if tenant is None else tenant)
    if tenant is not None:
        raise ConfigError(f"a tenant is only for microsoft365, not for {name}")
    return PRESETS[name]


def preset_fields(chosen: ProviderPreset) -> dict[str, Any]:
    """Return the ``imap_config`` fields the preset fills: host, port, security, SASL
    mechanism, the three endpoints, the scopes and ``provider``."""
    return {
        "provider": chosen.name,
        "imap_host": chosen.imap_host,
        "imap_ssl_port": chosen.imap_port,
        "security": chosen.security,
        "sasl_mechanism": chosen.sasl_mechanism,
        "oauth2_token_endpoint": chosen.token_endpoint,
        "oauth2_authorize_endpoint": chosen.authorize_endpoint,
        "oauth2_device_endpoint": chosen.device_endpoint,
        "oauth2_scopes": list(chosen.scopes),
    }


def default_flow(
    provider: str | None, *, device_endpoint: str | None, authorize_endpoint: str | None
) -> AuthorizationFlow:
    """Return the flow that authorizes an account of ``provider`` with these endpoints: the
    preset's flow for a preset (Gmail loopback, Microsoft 365 device), else the device flow
    when there is a device endpoint, else the loopback flow.

    Raises:
        ConfigError: the account has neither a device nor an authorization endpoint.
    """
    if provider in PRESETS:
        return PRESETS[provider].flow
    if device_endpoint:
        return AuthorizationFlow.DEVICE
    if authorize_endpoint:
        return AuthorizationFlow.LOOPBACK
    raise ConfigError(
        "the account has neither a device endpoint nor an authorization endpoint "
        "(oauth2_device_endpoint, oauth2_authorize_endpoint)"
    )
