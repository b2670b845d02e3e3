"""Stored ``email_config`` values that are each wrong in one field: for every field a stored
config's problem can be about, one config whose problems include one about that field (the
problem tests of the core and of ``mail-pipeline imap`` both use them)."""

from __future__ import annotations

import copy
from typing import Any

CLIENT = {
    "oauth2_client_id": "client-1",
    "oauth2_token_endpoint": "https://login.example.com/oauth2/token",
}


def good_config() -> dict[str, Any]:
    """A valid stored ``email_config`` (password account, one folder)."""
    return {
        "mode": "custom_imap",
        "imap_config": {
            "imap_host": "imap.example.org",
            "imap_ssl_port": 993,
            "username": "alice@example.org",
            "password": "hunter2",
            "security": "ssl",
            "post_action": "none",
        },
        "filter_config": {"folders": ["INBOX"], "max_age_days": 7, "filters": []},
    }


def _with(imap: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    config = good_config()
    config["imap_config"].update(imap or {})
    config["imap_config"] = {k: v for k, v in config["imap_config"].items() if v is not None}
    config.update(top)
    return config


def _filters(**filters: Any) -> dict[str, Any]:
    config = good_config()
    config["filter_config"].update(filters)
    return config


#: field -> a stored config with a problem about that field.
BAD_CONFIGS: dict[str, dict[str, Any]] = {
    "imap_config": _with(imap_config=None),
    "imap_host": _with({"imap_host": " imap.example.org"}),
    "imap_ssl_port": _with({"imap_ssl_port": 70000}),
    "username": _with({"username": "  "}),
    "security": _with({"security": "tls-please"}),
    "password": _with({"password": None}),
    "oauth2_token": _with({"password": None, "oauth2_token": "two words"}),
    "oauth2_token_command": _with({"password": None, "oauth2_token_command": "cmd 'unbalanced"}),
    "oauth2_client_id": _with({"password": None, **CLIENT, "oauth2_client_id": " c "}),
    "oauth2_client_secret": _with({"oauth2_client_secret": "s"}),
    "oauth2_token_endpoint": _with(
        {"password": None, **CLIENT, "oauth2_token_endpoint": "http://login.example.com/t"}
    ),
    "oauth2_device_endpoint": _with(
        {"password": None, **CLIENT, "oauth2_device_endpoint": "http://example.com/d"}
    ),
    "oauth2_authorize_endpoint": _with(
        {"password": None, **CLIENT, "oauth2_authorize_endpoint": "ftp://example.com/a"}
    ),
    "oauth2_scopes": _with({"password": None, **CLIENT, "oauth2_scopes": ["two words"]}),
    "sasl_mechanism": _with({"password": None, **CLIENT, "sasl_mechanism": "plain"}),
    "provider": _with({"provider": "yahoo"}),
    "ca_file": _with({"ca_file": ""}),
    "post_action": _with({"post_action": "later"}),
    "move_to": _with({"post_action": "move"}),
    "max_message_bytes": _with({"max_message_bytes": 0}),
    "filter_config": _with(filter_config="INBOX"),
    "max_age_days": _filters(max_age_days=-1),
    "since": _filters(since="yesterday"),
    "filters": _filters(filters=["weird"]),
    "folders": _filters(folders=[]),
}


def bad_config(field: str) -> dict[str, Any]:
    """Return a fresh copy of the stored config that is wrong in ``field``."""
    return copy.deepcopy(BAD_CONFIGS[field])
