"""The one settings loader: defaults, the secret key's precedence, and that the CLI and the
Dagster resources read the same key from the same environment."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from mail_pipeline.cli import main
from mail_pipeline.defs.resources import build_resources
from mail_pipeline.errors import ConfigError, SecretKeyError
from mail_pipeline.platform.secret_box import SecretBox
from mail_pipeline.platform.settings import (
    load_settings,
)


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No MAIL_PIPELINE_* variable set, the current directory an empty temporary one."""
    for name in list(os.environ):
        if name.startswith("MAIL_PIPELINE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def test_defaults_follow_the_home(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.home == clean_env / "var"
    assert settings.database_url == f"sqlite:///{clean_env / 'var' / 'mail_pipeline.db'}"
    assert settings.attachment_root == clean_env / "var" / "attachments"
    assert settings.spool_dir == clean_env / "var" / "spool"
    assert settings.secret_key is None and settings.secret_key_source() is None
    assert settings.fetch_cron is None and settings.cleanup_cron is None

    monkeypatch.setenv("MAIL_PIPELINE_HOME", "elsewhere")
    monkeypatch.setenv("MAIL_PIPELINE_SPOOL_DIR", "/srv/spool")
    monkeypatch.setenv("MAIL_PIPELINE_ATTACHMENT_ROOT", "")  # empty counts as unset
    monkeypatch.setenv("MAIL_PIPELINE_FETCH_CRON", "*/2 * * * *")
    settings = load_settings()
    assert settings.home == clean_env / "elsewhere"
    assert settings.spool_dir == Path("/srv/spool")
    assert settings.attachment_root == clean_env / "elsewhere" / "attachments"
    assert settings.fetch_cron == "*/2 * * * *"


@pytest.mark.parametrize(
    ("variable", "attribute", "default", "zero_means"),
    [
        # consecutive authentication failures that pause a mailbox; 0: never pause
        ("AUTH_FAILURES_TO_PAUSE", "auth_failures_to_pause", 3, None),
        # new messages from which a folder sync parses in a worker; 0: never a worker
        ("PARSE_WORKER_MIN_MESSAGES", "parse_worker_min_messages", 300, None),
        # the window of the metrics and of health's FAILED tasks; 0 is refused
        ("METRICS_WINDOW_HOURS", "metrics_window_hours", 24, "bad"),
    ],
)
def test_a_whole_number_setting_is_read_when_asked(
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    attribute: str,
    default: int,
    zero_means: str | None,
) -> None:
    name = f"MAIL_PIPELINE_{variable}"
    assert getattr(load_settings(), attribute) == default  # the documented default
    monkeypatch.setenv(name, " 6 ")
    assert getattr(load_settings(), attribute) == 6
    bad_values = ["x", "-1", "2.5"]
    if zero_means == "bad":
        bad_values.append("0")
    else:
        monkeypatch.setenv(name, "0")
        assert getattr(load_settings(), attribute) is None
    for bad in bad_values:
        monkeypatch.setenv(name, bad)
        settings = load_settings()  # loading never fails on it: only reading the value
        with pytest.raises(ConfigError, match=name):
            getattr(settings, attribute)


def test_secret_key_precedence_env_then_key_file_then_home_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home_file = clean_env / "var" / "secret.key"
    home_file.parent.mkdir()
    home_file.write_text("the key in the home's file\n")
    assert load_settings().secret_key == "the key in the home's file"
    assert "home's key file" in (load_settings().secret_key_source() or "")

    named = clean_env / "named.key"
    named.write_text("  the key in the named file \n")
    monkeypatch.setenv("MAIL_PIPELINE_SECRET_KEY_FILE", str(named))
    assert load_settings().secret_key == "the key in the named file"
    assert "MAIL_PIPELINE_SECRET_KEY_FILE" in (load_settings().secret_key_source() or "")

    monkeypatch.setenv("MAIL_PIPELINE_SECRET_KEY", "the key in the environment")
    assert load_settings().secret_key == "the key in the environment"
    assert load_settings().secret_key_source() == "MAIL_PIPELINE_SECRET_KEY"


def test_a_named_key_file_that_cannot_be_read_is_an_error_not_a_fallback(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home_file = clean_env / "var" / "secret.key"
    home_file.parent.mkdir()
    home_file.write_text("the key in the home's file\n")
    monkeypatch.setenv("MAIL_PIPELINE_SECRET_KEY_FILE", str(clean_env / "missing.key"))
    settings = load_settings()  # reading the settings does not touch the key file ...
    with pytest.raises(SecretKeyError, match="cannot read MAIL_PIPELINE_SECRET_KEY_FILE"):
        _ = settings.secret_key  # ... asking for the key does
    empty = clean_env / "empty.key"
    empty.write_text("\n")
    monkeypatch.setenv("MAIL_PIPELINE_SECRET_KEY_FILE", str(empty))
    with pytest.raises(SecretKeyError, match="is empty"):
        _ = load_settings().secret_key


def test_resources_read_the_settings_when_initialised_not_when_built(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = build_resources()  # as the code location does at load: nothing read yet
    monkeypatch.setenv("MAIL_PIPELINE_HOME", str(clean_env / "later"))
    monkeypatch.setenv("MAIL_PIPELINE_SECRET_KEY_FILE", str(clean_env / "later.key"))
    (clean_env / "later.key").write_text("a key written after the definitions were built\n")
    with dg.build_resources(resources) as built:
        assert built.spool.directory == str(clean_env / "later" / "spool")
        assert built.attachments.root == str(clean_env / "later" / "attachments")
        assert built.store.database_url == f"sqlite:///{clean_env / 'later' / 'mail_pipeline.db'}"
        assert built.imap.settings().secret_key == "a key written after the definitions were built"


def test_a_password_sealed_by_the_cli_opens_in_the_dagster_resources(
    clean_env: Path,
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Only the home and the store are set: the key is the home's key file, made by the CLI.
    monkeypatch.setenv("MAIL_PIPELINE_HOME", str(clean_env / "home"))
    monkeypatch.setenv("MAIL_PIPELINE_DATABASE_URL", store_url)
    assert main(["secret-key"]) == 0
    key_file = clean_env / "home" / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert main(["users", "add", "carol", "carol@example.org"]) == 0
    monkeypatch.setenv("CAROL_PW", "carol's imap password")
    assert (
        main(["imap", "set", "carol", "--host", "imap.example.org", "--password-env", "CAROL_PW"])
        == 0
    ), capsys.readouterr().err
    monkeypatch.delenv("CAROL_PW")

    with dg.build_resources(build_resources()) as built:
        store = built.store.get()
        stored = store.users.get_setting("carol", "email_config") or {}
        assert "carol's imap password" not in str(stored)  # sealed at rest
        config = built.imap.config_manager(store).imap_fetch_config("carol")
        assert config.account.password == "carol's imap password"
    assert (
        SecretBox(key_file.read_text()).open(stored["imap_config"]["password"])
        == "carol's imap password"
    )


def test_without_a_key_the_cli_names_a_command_that_makes_one(
    clean_env: Path,
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MAIL_PIPELINE_DATABASE_URL", store_url)
    monkeypatch.setenv("CAROL_PW", "carol's imap password")
    assert main(["users", "add", "carol", "carol@example.org"]) == 0
    imap_set = ["imap", "set", "carol", "--host", "imap.example.org", "--password-env", "CAROL_PW"]
    capsys.readouterr()
    assert main(imap_set) == 2
    err = capsys.readouterr().err
    hint = re.search(r"mail-pipeline ([a-z-]+)", err.replace("mail-pipeline: error", ""))
    assert hint is not None, err
    assert main([hint.group(1)]) == 0  # the command the error names exists, and makes a key
    assert (clean_env / "var" / "secret.key").exists()
    assert main(imap_set) == 0


def test_secret_key_command_never_overwrites_and_says_where_the_key_comes_from(
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home_file = clean_env / "var" / "secret.key"
    home_file.parent.mkdir()
    home_file.write_text("an existing key of the home\n")
    assert main(["secret-key"]) == 0
    assert "already holds a key: kept" in capsys.readouterr().out
    assert home_file.read_text() == "an existing key of the home\n"

    other = clean_env / "other.key"
    assert main(["secret-key", "--file", str(other)]) == 0
    out = capsys.readouterr().out
    assert f"created key file {other}" in out
    assert f"set MAIL_PIPELINE_SECRET_KEY_FILE={other}" in out  # not the file in use yet

    monkeypatch.setenv("MAIL_PIPELINE_SECRET_KEY", "a key given in the environment")
    monkeypatch.setenv("MAIL_PIPELINE_SECRET_KEY_FILE", str(clean_env / "unmade.key"))
    assert main(["secret-key"]) == 0
    assert "comes from MAIL_PIPELINE_SECRET_KEY" in capsys.readouterr().out
    assert not (clean_env / "unmade.key").exists()
