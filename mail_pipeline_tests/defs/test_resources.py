"""The resources take what they are not given from the settings (mail_pipeline.defs.resources)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mail_pipeline.defs.resources import ImapResource
from mail_pipeline.errors import ConfigError
from mail_pipeline.oauth2.tokens import RefreshPolicy
from mail_pipeline.platform.settings import DEFAULT_PARSE_WORKER_MIN_MESSAGES
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import MailStore

VARIABLE = "MAIL_PIPELINE_PARSE_WORKER_MIN_MESSAGES"


def _threshold(resource: ImapResource, store: MailStore, root: Path) -> int | None:
    saver = EmailSaveService(store, AttachmentStorage(root))
    return resource.fetcher(store, saver).parse_process_min_messages


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        (None, None, DEFAULT_PARSE_WORKER_MIN_MESSAGES),
        ("50", None, 50),
        ("0", None, None),  # never a worker
        ("50", 7, 7),  # the resource's own value wins
        ("50", 0, None),
    ],
)
def test_the_parse_worker_threshold_comes_from_the_resource_or_the_settings(
    store: MailStore,
    attachment_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: str | None,
    field: int | None,
    expected: int | None,
) -> None:
    if env is None:
        monkeypatch.delenv(VARIABLE, raising=False)
    else:
        monkeypatch.setenv(VARIABLE, env)
    resource = ImapResource(secret_key="k" * 32, parse_worker_min_messages=field)
    assert _threshold(resource, store, attachment_root) == expected


def test_a_bad_threshold_fails_the_fetch_with_the_variable_named(
    store: MailStore, attachment_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VARIABLE, "-1")
    with pytest.raises(ConfigError, match=VARIABLE):
        _threshold(ImapResource(secret_key="k" * 32), store, attachment_root)


def test_the_oauth2_refresh_policy_is_the_resources(store: MailStore) -> None:
    default = ImapResource(secret_key="k" * 32).config_manager(store).oauth2_policy
    assert default == RefreshPolicy()
    resource = ImapResource(
        secret_key="k" * 32,
        oauth2_endpoint_timeout=5.0,
        oauth2_refresh_attempts=6,
        oauth2_refresh_backoff_seconds=0.5,
    )
    policy = resource.config_manager(store).oauth2_policy
    assert (policy.endpoint_timeout, policy.attempts, policy.backoff) == (5.0, 6, 0.5)
    assert policy.lock_ttl >= 6 * 5.0
    with pytest.raises(ValueError):
        ImapResource(secret_key="k" * 32, oauth2_refresh_attempts=0).config_manager(store)
