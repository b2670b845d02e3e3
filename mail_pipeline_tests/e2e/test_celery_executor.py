"""``email_fetch_job`` on Dagster's Celery executor: Redis, two workers, several shards.

Everything is real and started here on 127.0.0.1: Debian's ``redis-server`` as broker and
result backend, two ``dagster-celery`` worker processes (one slot each), the session's Dovecot,
and the mail store on SQLite and on PostgreSQL. The job is the code location's own, switched to
Celery by ``MAIL_PIPELINE_EXECUTOR=celery`` alone (no code change); the run is orchestrated by
this process and every step runs in a worker. The run must succeed with its shards executed by
both workers and every message stored exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from mail_pipeline.defs.fetch.assets import FETCH_GRAPH, fetch_step
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.e2e.celery_target import location_email_fetch_job
from mail_pipeline_tests.fixtures.celery_workers import CeleryWorker, write_celery_config
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.fixtures.redis import RedisServer
from mail_pipeline_tests.fixtures.spool_files import make_spool

pytestmark = [pytest.mark.celery, pytest.mark.dovecot]

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "celery executor test passphrase"
MAILBOXES = 8
MESSAGES_PER_MAILBOX = 2
SHARD_SIZE = 2
SHARD_STEP = fetch_step("fetch_mailbox_shard")
PLAN_CONFIG = {"plan_imap_fetch": {"config": {"shard_size": SHARD_SIZE}}}
#: The Redis databases of the broker and the result backend. Every test uses the same two
#: (a run leaves no task queued): the Celery app the executor builds in this process stays
#: bound to the broker of the first run, so a second broker URL would never see the tasks.
BROKER_DB, BACKEND_DB = 0, 1


def _raw(login: str, n: int) -> bytes:
    return (
        f"From: Sender <sender@remote.example>\r\nTo: {login}@example.org\r\n"
        f"Subject: celery {n}\r\nMessage-ID: <celery-{login}-{n}@e2e.test>\r\n"
        f"Date: Tue, 01 Sep 2026 10:00:00 +0000\r\n\r\nbody {n} of {login}\r\n"
    ).encode()


@pytest.fixture
def workers(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_url: str
) -> Iterator[list[CeleryWorker]]:
    """The environment of the code location (set here and in both workers) and two workers."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        "DAGSTER_HOME": str(home),
        "MAIL_PIPELINE_HOME": str(tmp_path / "home"),
        "MAIL_PIPELINE_DATABASE_URL": store_url,
        "MAIL_PIPELINE_ATTACHMENT_ROOT": str(tmp_path / "attachments"),
        "MAIL_PIPELINE_SPOOL_DIR": str(make_spool(tmp_path / "spool")),
        "MAIL_PIPELINE_SECRET_KEY": SECRET,
        "MAIL_PIPELINE_EXECUTOR": "celery",
        "MAIL_PIPELINE_CELERY_BROKER": redis_server.url(BROKER_DB),
        "MAIL_PIPELINE_CELERY_BACKEND": redis_server.url(BACKEND_DB),
        "PYTHONPATH": str(REPO_ROOT),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # The instance's storage is created once, here, as `dagster instance migrate` would:
    # two workers starting at once would both create its SQLite tables.
    with dg.DagsterInstance.get():
        pass
    config = write_celery_config(
        tmp_path / "celery.yaml", redis_server.url(BROKER_DB), redis_server.url(BACKEND_DB)
    )
    started = [CeleryWorker(name, config, tmp_path, env) for name in ("w1", "w2")]
    try:
        for worker in started:
            worker.start()
        for worker in started:
            worker.wait_ready()
        yield started
    finally:
        for worker in started:
            worker.stop()


def _step_workers(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """Map each step key of the run to the Celery worker (``name@host``) that executed it."""
    executed: dict[str, str] = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        metadata = getattr(event.event_specific_data, "metadata", None) or {}
        worker = metadata.get("Celery worker")
        if worker is not None:
            executed[event.step_key] = str(worker.value)
    return executed


def test_shards_run_on_both_celery_workers_and_every_message_is_stored_once(
    workers: list[CeleryWorker], store: MailStore, dovecot: DovecotServer
) -> None:
    configs = EmailConfigManager(store, SECRET)
    expected: dict[int, list[str]] = {}
    for i in range(MAILBOXES):
        login = dovecot.new_user()
        user = store.users.add(f"celery{i}", f"celery{i}@example.org")
        configs.update_fetch_config(
            user.id,
            {
                "imap_config": {
                    "imap_host": "127.0.0.1",
                    "imap_ssl_port": dovecot.imaps_port,
                    "username": login.username,
                    "password": login.password,
                    "use_ssl": True,
                    "ca_file": str(dovecot.ca_cert_path),
                },
                "filter_config": {"folders": ["INBOX"], "max_age_days": None},
            },
        )
        for n in range(MESSAGES_PER_MAILBOX):
            dovecot.append(login.username, _raw(login.username, n))
        expected[user.id] = sorted(
            f"celery-{login.username}-{n}@e2e.test" for n in range(MESSAGES_PER_MAILBOX)
        )

    job = dg.reconstructable(location_email_fetch_job)
    assert location_email_fetch_job().executor_def.name == "celery_redis"
    with (
        dg.DagsterInstance.get() as instance,
        dg.execute_job(
            job,
            instance=instance,
            run_config={
                "ops": {
                    FETCH_GRAPH: {
                        "ops": {"plan_imap_fetch": {"config": {"shard_size": SHARD_SIZE}}}
                    }
                }
            },
            raise_on_error=False,
        ) as result,
    ):
        logs = "\n".join(w.log_text()[-2000:] for w in workers)
        assert result.success, logs
        executed = _step_workers(instance, result.run_id)

    shards = {step: w for step, w in executed.items() if step.startswith(f"{SHARD_STEP}[")}
    assert len(shards) == MAILBOXES // SHARD_SIZE, executed
    assert {w.split("@")[0] for w in shards.values()} == {"w1", "w2"}, executed
    for user_id, message_ids in expected.items():
        stored = sorted(m.message_id for m in store.messages.summaries(user_id))
        assert stored == message_ids
    assert store.messages.count() == MAILBOXES * MESSAGES_PER_MAILBOX
