"""Provider presets: the fields Gmail and Microsoft 365 fill, tenants, and the default flow."""

from __future__ import annotations

import pytest

from mail_pipeline.errors import ConfigError
from mail_pipeline.oauth2.providers import (
    GMAIL,
    PRESETS,
    AuthorizationFlow,
    default_flow,
    preset,
    preset_fields,
)


def test_gmail_fills_host_port_security_sasl_endpoints_and_scope() -> None:
    assert preset_fields(preset("gmail")) == {
        "provider": "gmail",
        "imap_host": "imap.gmail.com",
        "imap_ssl_port": 993,
        "security": "ssl",
        "sasl_mechanism": "xoauth2",
        "oauth2_token_endpoint": "https://oauth2.googleapis.com/token",
        "oauth2_authorize_endpoint": "https://accounts.google.com/o/oauth2/v2/auth",
        "oauth2_device_endpoint": "https://oauth2.googleapis.com/device/code",
        "oauth2_scopes": ["https://mail.google.com/"],
    }
    # Gmail also offers OAUTHBEARER; its device flow refuses the mail scope: loopback.
    assert GMAIL.sasl_mechanisms == ("xoauth2", "oauthbearer")
    assert GMAIL.flow is AuthorizationFlow.LOOPBACK and not GMAIL.device_flow_scopes_allowed
    assert dict(GMAIL.authorize_params) == {"access_type": "offline", "prompt": "consent"}


def test_microsoft365_uses_the_common_tenant_unless_one_is_given() -> None:
    fields = preset_fields(preset("microsoft365"))
    assert fields == {
        "provider": "microsoft365",
        "imap_host": "outlook.office365.com",
        "imap_ssl_port": 993,
        "security": "ssl",
        "sasl_mechanism": "xoauth2",
        "oauth2_token_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "oauth2_authorize_endpoint": (
            "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
        ),
        "oauth2_device_endpoint": (
            "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode"
        ),
        "oauth2_scopes": ["https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"],
    }
    tenant = preset("microsoft365", tenant="contoso.onmicrosoft.com")
    assert tenant.token_endpoint == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    )
    assert tenant.device_endpoint.endswith("/contoso.onmicrosoft.com/oauth2/v2.0/devicecode")
    assert tenant.sasl_mechanisms == ("xoauth2",)
    assert tenant.flow is AuthorizationFlow.DEVICE


@pytest.mark.parametrize("tenant", ["../x", "a/b", "", "-x", "a b", "x?y=1"])
def test_a_tenant_that_is_not_a_name_is_refused(tenant: str) -> None:
    with pytest.raises(ConfigError, match="is not a tenant name"):
        preset("microsoft365", tenant=tenant)


def test_unknown_preset_and_a_tenant_for_gmail_are_refused() -> None:
    with pytest.raises(ConfigError, match="no provider preset 'yahoo'"):
        preset("yahoo")
    with pytest.raises(ConfigError, match="only for microsoft365"):
        preset("gmail", tenant="common")
    assert set(PRESETS) == {"gmail", "microsoft365"}


def test_the_default_flow_is_the_presets_else_device_else_loopback() -> None:
    assert default_flow("gmail", device_endpoint="x", authorize_endpoint="y") == "loopback"
    assert default_flow("microsoft365", device_endpoint="x", authorize_endpoint="y") == "device"
    assert default_flow("custom", device_endpoint="x", authorize_endpoint="y") == "device"
    assert default_flow(None, device_endpoint=None, authorize_endpoint="y") == "loopback"
    with pytest.raises(ConfigError, match="neither a device endpoint"):
        default_flow("custom", device_endpoint=None, authorize_endpoint=None)
