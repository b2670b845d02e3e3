"""The engine ``email_fetch_job`` runs on, chosen by the settings when the location loads.

``MAIL_PIPELINE_EXECUTOR`` picks one of Dagster's own executors, so the same job scales from
one process to many machines without a code change:

* ``in_process`` (default): every step in the run's process. A shard step already fetches its
  mailboxes in a thread pool, so one process keeps up with thousands of idle mailboxes (see
  the README's sizing figures); this costs the least per step.
* ``multiprocess``: each step in its own process started by a forkserver, at most
  ``MAIL_PIPELINE_MAX_CONCURRENT`` at once (default: the CPU count). For one large machine
  whose shards need more than one core.
* ``celery``: each step is a Celery task (``dagster-celery``) on workers anywhere that reach
  the broker ``MAIL_PIPELINE_CELERY_BROKER`` (default ``redis://localhost:6379/0``) and post
  results to ``MAIL_PIPELINE_CELERY_BACKEND`` (default ``redis://localhost:6379/1``). Workers
  start with ``dagster-celery worker start -A dagster_celery.app -y <config.yaml>`` where the
  YAML names the same broker and backend; every worker needs this package, the same
  ``MAIL_PIPELINE_*`` settings and a PostgreSQL store and instance that all of them reach.

An unknown name or a bad number is a :class:`~mail_pipeline.errors.ConfigError` when the code
location loads, so a typo never runs the job on a different engine than the operator asked for.
"""

from __future__ import annotations

from typing import Final

import dagster as dg

from mail_pipeline.errors import ConfigError
from mail_pipeline.platform.settings import ENV_PREFIX, Settings, whole_number

IN_PROCESS: Final = "in_process"
MULTIPROCESS: Final = "multiprocess"
CELERY: Final = "celery"
EXECUTORS: Final = (IN_PROCESS, MULTIPROCESS, CELERY)

DEFAULT_CELERY_BROKER: Final = "redis://localhost:6379/0"
DEFAULT_CELERY_BACKEND: Final = "redis://localhost:6379/1"


def executor_name(settings: Settings) -> str:
    """Return the executor the settings ask for (``in_process`` when unset).

    Raises:
        ConfigError: ``MAIL_PIPELINE_EXECUTOR`` is not one of :data:`EXECUTORS`.
    """
    name = settings.executor or IN_PROCESS
    if name not in EXECUTORS:
        raise ConfigError(
            f"{ENV_PREFIX}EXECUTOR={name!r} is not an executor; use one of {', '.join(EXECUTORS)}"
        )
    return name


def max_concurrent(settings: Settings) -> int:
    """Return ``MAIL_PIPELINE_MAX_CONCURRENT``, or 0 (Dagster's default: the CPU count).

    Raises:
        ConfigError: the value is not a whole number >= 1.
    """
    return whole_number("MAX_CONCURRENT", settings.max_concurrent_env, 1, "1 or more") or 0


def multiprocess_config(settings: Settings) -> dict[str, object]:
    """Return the multiprocess executor's config: a forkserver, and ``max_concurrent`` when
    ``MAIL_PIPELINE_MAX_CONCURRENT`` is set.

    Raises:
        ConfigError: ``MAIL_PIPELINE_MAX_CONCURRENT`` is invalid.
    """
    config: dict[str, object] = {"start_method": {"forkserver": {}}}
    concurrency = max_concurrent(settings)
    if concurrency:
        config["max_concurrent"] = concurrency
    return config


def celery_config(settings: Settings) -> dict[str, object]:
    """Return the Celery executor's config: the broker and result backend of the settings."""
    return {
        "broker": settings.celery_broker or DEFAULT_CELERY_BROKER,
        "backend": settings.celery_backend or DEFAULT_CELERY_BACKEND,
    }


def build_executor(settings: Settings) -> dg.ExecutorDefinition:
    """Return the executor definition the settings select, configured from them.

    Raises:
        ConfigError: the executor name or ``MAIL_PIPELINE_MAX_CONCURRENT`` is invalid.
    """
    name = executor_name(settings)
    if name == MULTIPROCESS:
        return dg.multiprocess_executor.configured(
            multiprocess_config(settings), name="multiprocess_forkserver"
        )
    if name == CELERY:
        # Imported only when chosen: Celery and kombu cost a third of a second to import.
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_config(settings), name="celery_redis")
    return dg.in_process_executor
