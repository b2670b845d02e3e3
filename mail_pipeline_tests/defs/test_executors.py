"""The fetch job's engine, chosen by MAIL_PIPELINE_EXECUTOR when the location loads."""

from __future__ import annotations

import pytest

from mail_pipeline.defs.definitions import defs
from mail_pipeline.defs.executors import (
    DEFAULT_CELERY_BACKEND,
    DEFAULT_CELERY_BROKER,
    celery_config,
    multiprocess_config,
)
from mail_pipeline.defs.fetch.jobs import EMAIL_FETCH_JOB
from mail_pipeline.errors import ConfigError
from mail_pipeline.platform.settings import load_settings


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("", "in_process"),
        ("in_process", "in_process"),
        ("multiprocess", "multiprocess_forkserver"),
        (" Celery ", "celery_redis"),
    ],
)
def test_the_location_builds_the_fetch_job_on_the_executor_of_the_settings(
    monkeypatch: pytest.MonkeyPatch, value: str, name: str
) -> None:
    monkeypatch.setenv("MAIL_PIPELINE_EXECUTOR", value)
    location = defs()
    assert location.get_job_def(EMAIL_FETCH_JOB).executor_def.name == name
    # The schedule refers to the job by name, so the location still resolves as one job.
    location.get_repository_def().get_all_jobs()


def test_multiprocess_uses_a_forkserver_and_the_configured_concurrency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert multiprocess_config(load_settings()) == {"start_method": {"forkserver": {}}}
    monkeypatch.setenv("MAIL_PIPELINE_MAX_CONCURRENT", "6")
    assert multiprocess_config(load_settings()) == {
        "start_method": {"forkserver": {}},
        "max_concurrent": 6,
    }


def test_celery_takes_its_broker_and_backend_from_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert celery_config(load_settings()) == {
        "broker": DEFAULT_CELERY_BROKER,
        "backend": DEFAULT_CELERY_BACKEND,
    }
    monkeypatch.setenv("MAIL_PIPELINE_CELERY_BROKER", "redis://broker.internal:6379/4")
    monkeypatch.setenv("MAIL_PIPELINE_CELERY_BACKEND", "redis://broker.internal:6379/5")
    assert celery_config(load_settings()) == {
        "broker": "redis://broker.internal:6379/4",
        "backend": "redis://broker.internal:6379/5",
    }


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MAIL_PIPELINE_EXECUTOR", "k8s", "MAIL_PIPELINE_EXECUTOR='k8s' is not an executor"),
        ("MAIL_PIPELINE_MAX_CONCURRENT", "many", "is not a whole number"),
        ("MAIL_PIPELINE_MAX_CONCURRENT", "0", "must be 1 or more"),
    ],
)
def test_a_bad_setting_fails_the_location_load_with_its_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv("MAIL_PIPELINE_EXECUTOR", "multiprocess")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=message):
        defs()
