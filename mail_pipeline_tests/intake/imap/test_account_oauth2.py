"""The OAuth2 client fields of an account: a fourth kind of credential, its checks, its
sealed and masked client secret, and the token source the loader gives it."""

from __future__ import annotations

from typing import Any

import pytest

from mail_pipeline.errors import ConfigError
from mail_pipeline.intake.imap.account import ImapAccount, SaslMechanism, imap_config_problems
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.oauth2.tokens import StoredTokenSource
from mail_pipeline.platform.secret_box import MASK
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.intake.imap.mailboxes import SECRET

CLIENT = {
    "oauth2_client_id": "client-1",
    "oauth2_token_endpoint": "https://login.example.com/oauth2/token",
}


def _account(**kw: Any) -> ImapAccount:
    return ImapAccount("imap.example.org", 993, "alice", **kw)


def test_a_client_is_a_credential_of_its_own() -> None:
    account = _account(**CLIENT, oauth2_scopes=["imap", "offline_access"])
    assert account.uses_oauth2 and account.uses_oauth2_client
    assert account.oauth2_scopes == ("imap", "offline_access")
    assert account.sasl_mechanism is SaslMechanism.XOAUTH2
    assert _account(**CLIENT, sasl_mechanism="OAUTHBEARER").sasl_mechanism is (
        SaslMechanism.OAUTHBEARER
    )
    assert not _account(password="pw").uses_oauth2_client
    secret = _account(**CLIENT, oauth2_client_secret="s3cr3t-value")
    assert "s3cr3t-value" not in repr(secret)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({**CLIENT, "password": "pw"}, "either a password or OAuth2"),
        ({**CLIENT, "oauth2_token": "t"}, "only one of oauth2_token or an OAuth2 client"),
        ({"oauth2_client_id": "c"}, "needs oauth2_token_endpoint"),
        ({"oauth2_token_endpoint": CLIENT["oauth2_token_endpoint"]}, "needs oauth2_client_id"),
        ({"password": "pw", "oauth2_client_secret": "s"}, "secret needs oauth2_client_id"),
        ({**CLIENT, "oauth2_token_endpoint": "http://login.example.com/t"}, "must use https"),
        ({**CLIENT, "oauth2_token_endpoint": "ftp://x/t"}, "must be an https:// URL"),
        ({**CLIENT, "oauth2_token_endpoint": "nonsense"}, "must be an https:// URL"),
        ({**CLIENT, "oauth2_device_endpoint": "http://example.com/d"}, "oauth2_device_endpoint"),
        ({**CLIENT, "oauth2_scopes": ["two words"]}, "oauth2_scopes"),
        ({**CLIENT, "oauth2_scopes": "imap"}, "oauth2_scopes"),
        ({**CLIENT, "oauth2_client_id": " c "}, "oauth2_client_id must be a non-empty"),
        ({**CLIENT, "sasl_mechanism": "plain"}, "sasl_mechanism"),
        ({**CLIENT, "provider": "yahoo"}, "provider"),
    ],
)
def test_client_field_problems(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _account(**kwargs)


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost", "[::1]:9000"])
def test_http_is_allowed_only_on_loopback(host: str) -> None:
    assert _account(**{**CLIENT, "oauth2_token_endpoint": f"http://{host}/token"})


def test_a_stored_client_secret_is_sealed_masked_and_kept(store: MailStore) -> None:
    configs = EmailConfigManager(store, SECRET)
    user = store.users.add("cleo", "cleo@example.org")
    imap = {
        "imap_host": "imap.example.org",
        "username": "cleo@example.org",
        **CLIENT,
        "oauth2_client_secret": "the-client-secret",
        "oauth2_scopes": ["imap"],
        "provider": "custom",
    }
    shown = configs.update_fetch_config(user.id, {"imap_config": imap})
    assert shown["imap_config"]["oauth2_client_secret"] == MASK
    stored = configs.get_email_config(user.id)["imap_config"]
    assert stored["oauth2_client_secret"].startswith("fernet:v1:")
    assert "the-client-secret" not in str(stored)
    # a config shown masked can be saved back: the secret stays
    shown["imap_config"]["oauth2_scopes"] = ["imap", "offline_access"]
    configs.update_fetch_config(user.id, shown)
    account = configs.imap_fetch_config(user.id).account
    assert account.oauth2_client_secret == "the-client-secret"
    assert account.oauth2_scopes == ("imap", "offline_access")
    # no grant yet: loading works, the login will say "not authorized"
    assert isinstance(account.token_source, StoredTokenSource)
    assert account.token_source.username == "cleo"
    assert imap_config_problems(stored) == []
