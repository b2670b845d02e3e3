"""The account schema: ImapAccount's checks, defaults and hidden secrets."""

from __future__ import annotations

from typing import Any

import pytest

from mail_pipeline.errors import ConfigError
from mail_pipeline.intake.imap.account import ImapAccount, ImapSecurity


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"host": ""}, "host"),
        ({"host": " imap.example.org"}, "whitespace"),
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"port": True}, "port"),
        ({"port": "993"}, "port"),
        ({"username": "  "}, "username"),
        ({"security": "tls-please"}, "security"),
        ({"password": None}, "give a password or an OAuth2 token"),
        ({"password": ""}, "password is empty"),
        ({"oauth2_token": "t"}, "not both"),
        ({"password": None, "oauth2_token": "t", "oauth2_token_command": "x"}, "not both"),
        ({"password": None, "oauth2_token": "has space"}, "whitespace"),
        ({"password": None, "oauth2_token": ""}, "empty"),
        ({"password": None, "oauth2_token_command": "  "}, "empty"),
        ({"password": None, "oauth2_token_command": "cmd 'unbalanced"}, "cannot be parsed"),
        ({"ca_file": ""}, "ca_file"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"read_timeout": float("nan")}, "read_timeout"),
        ({"read_timeout": -1}, "read_timeout"),
    ],
)
def test_config_errors_fail_fast(kwargs: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = {
        "host": "imap.example.org",
        "port": 993,
        "username": "alice",
        "password": "pw",
    }
    base.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        ImapAccount(**base)


def test_account_defaults_and_repr_hide_secrets() -> None:
    account = ImapAccount("imap.example.org", 993, "alice", password="hunter2-secret")
    assert account.security is ImapSecurity.SSL
    assert account.verify_tls is True
    assert "hunter2-secret" not in repr(account)
    assert account.endpoint == "alice@imap.example.org:993 (ssl)"
    token_account = ImapAccount("h", 143, "a", security="STARTTLS", oauth2_token="tok-secret")  # type: ignore[arg-type]
    assert token_account.security is ImapSecurity.STARTTLS
    assert "tok-secret" not in repr(token_account)


def test_every_problem_of_an_account_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        ImapAccount("", 0, "", ca_file="", read_timeout=0)
    text = str(info.value)
    for needle in ("host", "port", "username", "credential", "ca_file", "read_timeout"):
        assert needle in text
