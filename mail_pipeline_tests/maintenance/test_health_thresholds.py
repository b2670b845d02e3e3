"""Health thresholds from the settings: MAIL_PIPELINE_HEALTH_* and the fetch cron's interval."""

from __future__ import annotations

import pytest

from mail_pipeline.defs.fetch.schedules import DEFAULT_FETCH_CRON as SCHEDULE_DEFAULT_CRON
from mail_pipeline.errors import ConfigError
from mail_pipeline.maintenance.cron_interval import DEFAULT_FETCH_CRON
from mail_pipeline.maintenance.health_thresholds import HealthThresholds
from mail_pipeline.platform.settings import HEALTH_DEFAULTS, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in HEALTH_DEFAULTS:
        monkeypatch.delenv(f"MAIL_PIPELINE_HEALTH_{name}", raising=False)
    monkeypatch.delenv("MAIL_PIPELINE_FETCH_CRON", raising=False)


def test_unset_settings_give_the_documented_defaults() -> None:
    thresholds = HealthThresholds.from_settings(load_settings())
    assert thresholds == HealthThresholds()
    assert thresholds == HealthThresholds(
        failed_tasks_warning=1,
        stale_tasks_warning=1,
        missed_fetches_critical=3,
        fetch_interval_seconds=300.0,
        spool_warning_seconds=1800.0,
        spool_critical_seconds=7200.0,
        spool_failed_warning=None,
    )
    # The health's idea of the default fetch schedule is the schedule's.
    assert DEFAULT_FETCH_CRON == SCHEDULE_DEFAULT_CRON


def test_every_threshold_is_a_setting_and_0_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (
        ("FAILED_TASKS", "5"),
        ("STALE_TASKS", "0"),
        ("MISSED_FETCHES", "6"),
        ("SPOOL_WARNING_SECONDS", " 600 "),
        ("SPOOL_CRITICAL_SECONDS", "0"),
        ("SPOOL_FAILED", "2"),
    ):
        monkeypatch.setenv(f"MAIL_PIPELINE_HEALTH_{name}", value)
    monkeypatch.setenv("MAIL_PIPELINE_FETCH_CRON", "0 9-17 * * 1-5")
    assert HealthThresholds.from_settings(load_settings()) == HealthThresholds(
        failed_tasks_warning=5,
        stale_tasks_warning=None,
        missed_fetches_critical=6,
        fetch_interval_seconds=64 * 3600.0,  # Friday 17:00 to Monday 09:00
        spool_warning_seconds=600.0,
        spool_critical_seconds=None,
        spool_failed_warning=2,
    )
    # An empty value counts as unset.
    monkeypatch.setenv("MAIL_PIPELINE_HEALTH_FAILED_TASKS", "")
    assert HealthThresholds.from_settings(load_settings()).failed_tasks_warning == 1


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MAIL_PIPELINE_HEALTH_MISSED_FETCHES", "three", "is not a whole number"),
        ("MAIL_PIPELINE_HEALTH_SPOOL_WARNING_SECONDS", "-5", "must be 0 \\(off\\) or more"),
        ("MAIL_PIPELINE_FETCH_CRON", "every 5 minutes", "MAIL_PIPELINE_FETCH_CRON"),
    ],
)
def test_a_bad_setting_is_a_config_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    settings = load_settings()  # read lazily: only judging health needs them
    with pytest.raises(ConfigError, match=message) as caught:
        HealthThresholds.from_settings(settings)
    assert variable in str(caught.value)
