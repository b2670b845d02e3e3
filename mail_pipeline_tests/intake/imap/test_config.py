"""EmailConfigManager: the seed's key names, validation, sealed and masked passwords."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from typing import Any

import pytest

from mail_pipeline.errors import ConfigError, SecretKeyError
from mail_pipeline.intake.imap.account import ImapSecurity, PostAction
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.platform.secret_box import MASK
from mail_pipeline.storage.store import EmailSource, MailStore

KEY = "test passphrase for the secret box"


def seed_style(**imap: Any) -> dict[str, Any]:
    """An email_config with the seed system's real key names."""
    base = {
        "imap_host": "imap.example.org",
        "imap_ssl_port": 993,
        "username": "alice@example.org",
        "password": "hunter2",
        "use_ssl": True,
    }
    base.update(imap)
    return {
        "mode": "custom_imap",
        "imap_config": base,
        "filter_config": {"folder": "INBOX", "max_age_days": 3, "filters": ["unread"]},
    }


@pytest.fixture
def manager(store: MailStore) -> EmailConfigManager:
    store.users.add("alice", "alice@example.org")
    return EmailConfigManager(store, KEY)


def test_seed_config_is_stored_sealed_and_read_back(
    manager: EmailConfigManager, store: MailStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    shown = manager.update_fetch_config("alice", seed_style())
    assert shown["imap_config"]["password"] == MASK
    stored = store.users.get_setting("alice", "email_config")
    assert stored is not None
    assert "hunter2" not in json.dumps(stored)
    assert stored["imap_config"]["password"].startswith("fernet:v1:")
    assert "hunter2" not in caplog.text
    fetch = manager.imap_fetch_config("alice")
    assert fetch.account.password == "hunter2"
    assert (fetch.account.host, fetch.account.port) == ("imap.example.org", 993)
    assert fetch.account.security is ImapSecurity.SSL
    assert "hunter2" not in repr(fetch)
    assert fetch.filters.folders == ("INBOX",)
    assert fetch.filters.unread_only and fetch.filters.max_age_days == 3
    assert manager.detect_email_source("alice") is EmailSource.IMAP


def test_short_keys_and_starttls(manager: EmailConfigManager) -> None:
    config = {
        "imap_config": {
            "host": "mx.example.org",
            "port": 143,
            "username": "a",
            "password": "p",
            "use_ssl": False,
            "delete_after_fetch": True,
        }
    }
    manager.update_fetch_config("alice", config)
    fetch = manager.imap_fetch_config("alice")
    assert fetch.account.security is ImapSecurity.STARTTLS and fetch.account.port == 143
    assert fetch.post_action is PostAction.DELETE


def test_validation_reports_every_problem(manager: EmailConfigManager) -> None:
    bad = {
        "imap_config": {
            "imap_host": "",
            "imap_ssl_port": 70000,
            "username": "",
            "post_action": "move",
        },
        "filter_config": {"max_age_days": -1, "filters": ["weird"], "since": "yesterday"},
    }
    with pytest.raises(ConfigError) as info:
        manager.update_fetch_config("alice", bad)
    text = str(info.value)
    for needle in (
        "imap_host",
        "imap_ssl_port",
        "username",
        "credential",
        "move_to",
        "max_age_days",
        "weird",
        "since",
    ):
        assert needle in text
    assert manager.get_email_config("alice") == {}
    assert not EmailConfigManager.is_valid_imap_config(bad)
    assert EmailConfigManager.is_valid_imap_config(seed_style())


def test_masked_password_keeps_the_stored_one(manager: EmailConfigManager) -> None:
    shown = manager.update_fetch_config("alice", seed_style())
    shown["imap_config"]["imap_host"] = "imap2.example.org"
    manager.update_fetch_config("alice", shown)
    fetch = manager.imap_fetch_config("alice")
    assert fetch.account.host == "imap2.example.org" and fetch.account.password == "hunter2"


def test_no_key_no_password(store: MailStore) -> None:
    store.users.add("bob", "bob@example.org")
    with pytest.raises(SecretKeyError):
        EmailConfigManager(store, None).update_fetch_config("bob", seed_style())


def test_update_fetch_time_and_first_sync_window(manager: EmailConfigManager) -> None:
    manager.update_fetch_config("alice", seed_style())
    manager.update_fetch_time("alice", datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    filters = manager.get_email_config("alice")["filter_config"]
    assert filters["last_email_fetch_time"] == "2026-11-25T10:00:00+00:00"
    window = manager.imap_fetch_config("alice").filters
    assert window.first_sync_since(date(2026, 11, 25)) == date(2026, 11, 22)


def test_auto_assign_is_haraka(manager: EmailConfigManager, store: MailStore) -> None:
    store.users.set_setting("alice", "email_config", {"mode": "auto_assign"})
    assert manager.detect_email_source("alice") is EmailSource.HARAKA
    with pytest.raises(ConfigError):
        manager.imap_fetch_config("alice")
    assert manager.imap_users() == []


def test_max_message_bytes_is_per_account_validated_and_defaults_to_the_spools(
    manager: EmailConfigManager,
) -> None:
    from mail_pipeline.intake.spool.ingest import DEFAULT_MAX_SIZE

    manager.update_fetch_config("alice", seed_style())
    assert manager.imap_fetch_config("alice").max_message_bytes == DEFAULT_MAX_SIZE
    manager.update_fetch_config("alice", seed_style(max_message_bytes=102400))
    assert manager.imap_fetch_config("alice").max_message_bytes == 102400
    for bad in (0, -5, "100k", True, 1.5):
        with pytest.raises(ConfigError, match="max_message_bytes"):
            manager.update_fetch_config("alice", seed_style(max_message_bytes=bad))
    assert manager.imap_fetch_config("alice").max_message_bytes == 102400  # kept


@pytest.mark.parametrize(
    ("imap", "needle"),
    [
        ({"imap_host": " imap.example.org"}, "whitespace"),
        ({"password": None, "oauth2_token": "two words"}, "whitespace"),
        ({"password": None, "oauth2_token_command": "helper 'unbalanced"}, "cannot be parsed"),
        ({"ca_file": ""}, "ca_file"),
    ],
)
def test_set_list_and_load_check_the_account_with_the_one_schema(
    manager: EmailConfigManager, store: MailStore, imap: dict[str, Any], needle: str
) -> None:
    """These passed ``imap set`` and ``imap list`` but failed every fetch: the CLI's check and
    the account's were two definitions. Now one refuses what the other would."""
    config = seed_style(**imap)
    with pytest.raises(ConfigError, match=needle):
        manager.update_fetch_config("alice", config)  # what `mail-pipeline imap set` calls
    assert manager.get_email_config("alice") == {}
    store.users.set_setting("alice", "email_config", config)  # stored by other means
    ((_id, _name, valid, problem),) = manager.imap_users()  # what `imap list` shows
    assert not valid and needle in problem
    with pytest.raises(ConfigError) as info:
        manager.imap_fetch_config("alice")  # what the fetcher loads
    assert problem in str(info.value)


#: What each field's problem says outside the command line (task logs, the Dagster event log,
#: ``imap_targets()`` and so ``plan_fetch``'s warnings, health): the stored field's label.
LABELLED = {
    "imap_config": "imap_config is missing",
    "imap_host": "IMAP host (imap_host) ' imap.example.org' has surrounding whitespace",
    "imap_ssl_port": "IMAP port (imap_ssl_port) must be a number from 1 to 65535, not 70000",
    "username": "IMAP username must be a non-empty string",
    "security": "IMAP security 'tls-please' is not one of: ssl, starttls, plain",
    "password": "IMAP account 'alice@example.org': a credential is needed: give a password or "
    "an OAuth2 token (oauth2_token or oauth2_token_command) or an OAuth2 client "
    "(oauth2_client_id and oauth2_token_endpoint)",
    "oauth2_token": "IMAP account 'alice@example.org': the OAuth2 token contains whitespace or "
    "control characters",
    "oauth2_token_command": "oauth2_token_command cannot be parsed: No closing quotation",
    "oauth2_client_id": "IMAP account 'alice@example.org': oauth2_client_id must be a non-empty "
    "string",
    "oauth2_client_secret": "IMAP account 'alice@example.org': oauth2_client_secret needs "
    "oauth2_client_id",
    "oauth2_token_endpoint": "oauth2_token_endpoint 'http://login.example.com/t' must use https "
    "(http only for 127.0.0.1 or localhost)",
    "oauth2_device_endpoint": "oauth2_device_endpoint 'http://example.com/d' must use https "
    "(http only for 127.0.0.1 or localhost)",
    "oauth2_authorize_endpoint": "oauth2_authorize_endpoint 'ftp://example.com/a' must be an "
    "https:// URL",
    "oauth2_scopes": "IMAP account 'alice@example.org': oauth2_scopes must be a list of scopes "
    "without spaces",
    "sasl_mechanism": "sasl_mechanism 'plain' is not one of: xoauth2, oauthbearer",
    "provider": "provider 'yahoo' is not one of: gmail, microsoft365, custom",
    "ca_file": "ca_file must be a non-empty path when given",
    "post_action": "post_action must be one of none, mark_seen, move, delete",
    "move_to": "post_action 'move' needs move_to (a folder)",
    "max_message_bytes": "max_message_bytes must be a whole number of bytes >= 1, not 0",
    "filter_config": "filter_config must be an object",
    "max_age_days": "max_age_days must be a whole number of days >= 0, not -1",
    "since": "since must be a date YYYY-MM-DD, not 'yesterday'",
    "filters": "unknown filter 'weird' (use unread, from:TEXT, subject:TEXT)",
    "folders": "folders must be a non-empty list of folder names",
}


def test_outside_the_cli_every_problem_names_the_stored_field(
    manager: EmailConfigManager, store: MailStore
) -> None:
    """A stored config wrong in each field: ``imap_targets()`` (what plan_fetch, health and the
    mailbox sensor read) says so with the field's label, the loader raises the same words, and
    one config without even an ``imap_config`` object does not stop the others."""
    from mail_pipeline.intake.imap.problems import ConfigProblemError
    from mail_pipeline_tests.intake.imap.bad_configs import BAD_CONFIGS, bad_config

    assert set(LABELLED) == set(BAD_CONFIGS)
    for field in BAD_CONFIGS:
        store.users.add(f"u-{field}", f"u-{field}@example.org")
        store.users.set_setting(f"u-{field}", "email_config", bad_config(field))
    targets = {t.username: t for t in manager.imap_targets()}
    assert set(targets) == {f"u-{field}" for field in BAD_CONFIGS}
    for field, text in LABELLED.items():
        target = targets[f"u-{field}"]
        assert not target.ok and target.problem == text, field
        assert [p.field for p in target.problems] == [field]
        with pytest.raises(ConfigProblemError) as info:
            manager.imap_fetch_config(f"u-{field}")
        assert str(info.value) == f"invalid IMAP config: {text}"
        assert info.value.problems == target.problems
    assert targets["u-imap_config"].host == ""
    assert targets["u-imap_host"].host == "imap.example.org"
