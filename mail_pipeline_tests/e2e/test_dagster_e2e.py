"""The pipeline under the real Dagster daemon and webserver, driven through GraphQL.

One scenario, run on each instance storage: the embedded SQLite instance (the repo's
``dagster.yaml``) and PostgreSQL (``deploy/dagster.postgres.yaml`` with ``DAGSTER_PG_*``
pointing at a fresh database on the session's server). The mail store follows the instance:
a SQLite file in the first case, a PostgreSQL database of its own in the second.

What it proves, against real Dovecot and Haraka servers:

1. ``email_fetch_job`` launched through GraphQL with the tags the schedule's dry run gives
   (every mailbox partition) fetches the good mailboxes and records the wrong-password
   mailbox as failed; every step succeeds but the last, ``report_failed_mailboxes``, which
   fails the run (red in the Runs list) after the lease was released; the IMAP task is
   COMPLETED with "1 of 3 mailboxes failed: bad (auth: ...)" as its error; the
   ``last_fetch_ok`` check of the ``mailbox`` asset fails for partition ``bad`` (with its
   error and since when) and passes for the others; ``bad`` is the asset's one failed
   partition (what the backfill dialog offers), the others are materialized.
2. The schedule and the sensors are on by default; mail sent through Haraka reaches the store
   through ``haraka_spool_sensor`` → ``spool_ingest_job`` alone.
3. ``mailbox_partitions_sensor`` creates the mailbox partitions; the bad mailbox's partition
   run fails; after three refused logins the circuit breaker pauses the mailbox; once the
   password is fixed and the mailbox resumed (``mail-pipeline imap resume``), a
   from-failure backfill of that partition re-executes it successfully, its check passes and
   it is no longer a failed partition of the asset.
4. A run of ``email_fetch_job`` whose spool branch fails (the inbox replaced by a file) fails;
   ``fetch_run_failure_sensor`` frees its fetch lease; after the spool is repaired a
   re-execution from failure runs only the failed branch (and the verdict, which passes: the
   mailbox that failed in that run was fetched by the backfill since) and stores the spooled
   mail once.

The daemon works in loops (spool sensor every 20 s, run-status sensors and backfills every
30 s), so independent waits overlap: the partition run beside the first fetch, the mail for
the spool sensor once that fetch's spool step is done, the backfill beside the re-execution.
Nothing that is asserted can be done by two of them: each proof's data is its own.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mail_pipeline.defs.fetch.assets import fetch_step
from mail_pipeline.defs.resources import FETCH_LOCK
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.storage.store import EmailSource, MailStore, TaskStatus
from mail_pipeline_tests.e2e.conftest import (
    EMBEDDED_INSTANCE,
    POSTGRES_INSTANCE,
    TERMINAL_STATUSES,
    VENV_BIN,
    DagsterServices,
)
from mail_pipeline_tests.e2e.mailbox_health import (
    asset_partition_statuses,
    check_partition_statuses,
    latest_evaluation,
)
from mail_pipeline_tests.fixtures.dovecot import DovecotServer, MailUser
from mail_pipeline_tests.fixtures.haraka import HarakaRig

pytestmark = [
    pytest.mark.dagster_e2e,
    # dagster_graphql's client calls gql the old way; not ours to fix
    pytest.mark.filterwarnings("ignore:Using variable_values:DeprecationWarning"),
]

SECRET = "e2e test passphrase"
WRONG_PASSWORD = "not-the-password"
# Never fires during a test: the scheduled runs would race the runs the test launches.
FETCH_CRON = "0 0 1 1 *"
PARTITION_SET = "fetch_mailbox_job_partition_set"
#: The mailbox circuit breaker's threshold (the default, said explicitly): the scenario's
#: third refused login pauses the bad mailbox.
AUTH_FAILURES_TO_PAUSE = 3
TERMINAL = TERMINAL_STATUSES


def _raw(tag: str, to: str, subject: str) -> bytes:
    return (
        f"From: Sender <sender@remote.example>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{tag}@e2e.test>\r\nDate: Tue, 01 Sep 2026 10:00:00 +0000\r\n\r\n"
        f"body of {tag}\r\n"
    ).encode()


def _message_ids(store: MailStore, user_id: int) -> list[str]:
    return sorted(m.message_id for m in store.messages.summaries(user_id))


def _processed(haraka: HarakaRig) -> list[str]:
    """The files under ``processed/<day>/``."""
    return sorted(p.name for p in haraka.path("processed").rglob("*") if p.is_file())


def _imap_config(dovecot: DovecotServer, login: MailUser, password: str) -> dict[str, Any]:
    return {
        "imap_config": {
            "imap_host": "127.0.0.1",
            "imap_ssl_port": dovecot.imaps_port,
            "username": login.username,
            "password": password,
            "use_ssl": True,
            "ca_file": str(dovecot.ca_cert_path),
        },
        "filter_config": {"folders": ["INBOX"], "max_age_days": None},
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The instance file, its env vars and the mail store URL for one storage backend."""
    if request.param == "sqlite":
        yield {
            "instance": EMBEDDED_INSTANCE,
            "env": {},
            "store_url": f"sqlite:///{tmp_path / 'mail_pipeline.db'}",
        }
        return
    server = request.getfixturevalue("postgres_server")
    yield {
        "instance": POSTGRES_INSTANCE,
        "env": {
            "DAGSTER_PG_USERNAME": "postgres",
            "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(server.port),
            "DAGSTER_PG_DB": server.create_database(),
        },
        "store_url": server.url(server.create_database()),
    }


def test_fetch_sensors_backfill_and_reexecution(
    storage: dict[str, Any],
    tmp_path: Path,
    dovecot: DovecotServer,
    haraka_factory: Callable[..., HarakaRig],
    dagster_services: Callable[..., DagsterServices],
) -> None:
    started = time.monotonic()
    # --- 1. a fresh store, two IMAP users (one with a wrong password), Haraka, the services
    store = MailStore(storage["store_url"])
    store.upgrade()
    config = EmailConfigManager(store, SECRET)
    good_login, bad_login, fine_login = dovecot.new_user(), dovecot.new_user(), dovecot.new_user()
    good = store.users.add("good", "good@example.test")
    bad = store.users.add("bad", "bad@example.test")
    fine = store.users.add("fine", "fine@example.test")
    config.update_fetch_config(
        good.id, _imap_config(dovecot, good_login, dovecot.password_of(good_login.username))
    )
    config.update_fetch_config(bad.id, _imap_config(dovecot, bad_login, WRONG_PASSWORD))
    config.update_fetch_config(
        fine.id, _imap_config(dovecot, fine_login, dovecot.password_of(fine_login.username))
    )
    for n in (1, 2):
        dovecot.append(good_login.username, _raw(f"imap-good-{n}", good.email, f"imap {n}"))
    dovecot.append(bad_login.username, _raw("imap-bad-1", bad.email, "imap for bad"))
    dovecot.append(fine_login.username, _raw("imap-fine-1", fine.email, "imap for fine"))

    haraka = haraka_factory(spool_dir=tmp_path / "spool", domains=("example.test",))
    services = dagster_services(
        storage["instance"],
        {
            **storage["env"],
            "MAIL_PIPELINE_DATABASE_URL": storage["store_url"],
            "MAIL_PIPELINE_ATTACHMENT_ROOT": str(tmp_path / "attachments"),
            "MAIL_PIPELINE_SPOOL_DIR": str(haraka.spool_dir),
            "MAIL_PIPELINE_SECRET_KEY": SECRET,
            "MAIL_PIPELINE_FETCH_CRON": FETCH_CRON,
            "MAIL_PIPELINE_AUTH_FAILURES_TO_PAUSE": str(AUTH_FAILURES_TO_PAUSE),
        },
    )
    print(f"services ready after {time.monotonic() - started:.1f} s")

    try:
        _scenario(store, services, haraka, dovecot, good.id, bad.id, bad_login, fine.id)
    finally:
        store.dispose()
    print(f"scenario done after {time.monotonic() - started:.1f} s")


def _scenario(
    store: MailStore,
    services: DagsterServices,
    haraka: HarakaRig,
    dovecot: DovecotServer,
    good: int,
    bad: int,
    bad_login: MailUser,
    fine: int,
) -> None:
    api = services.api
    t0 = time.monotonic()

    def mark(step: str) -> None:
        print(f"  {time.monotonic() - t0:6.1f} s  {step}")

    # --- the schedule and every sensor are on by default
    assert api.schedule_state("email_fetch_schedule") == "RUNNING"
    for sensor in (
        "haraka_spool_sensor",
        "mailbox_partitions_sensor",
        "fetch_run_failure_sensor",
        "fetch_run_canceled_sensor",
    ):
        assert api.sensor_state(sensor)["status"] == "RUNNING", sensor
    services.wait_for(
        lambda: set(api.partition_keys("fetch_mailbox_job")) >= {"good", "bad", "fine"} or None,
        120,
        "mailbox_partitions_sensor to add the partitions good, bad and fine",
    )
    dry = api.schedule_dry_run("email_fetch_schedule")  # no lease held: it would run
    assert dry["error"] is None and len(dry["runRequests"]) == 1, dry
    (scheduled,) = dry["runRequests"]  # over every mailbox partition
    keys = api.partition_keys("email_fetch_job")
    assert scheduled["tags"]["dagster/asset_partition_range_start"] == keys[0], scheduled
    assert scheduled["tags"]["dagster/asset_partition_range_end"] == keys[-1], scheduled

    # --- email_fetch_job through GraphQL, as the schedule requests it; beside it, the bad
    # mailbox's partition run, launched as the UI's launchpad does (with the partition's tags)
    fetch_run = api.launch_run("email_fetch_job", tags=scheduled["tags"])
    tags = api.partition_tags("fetch_mailbox_job", "bad")
    assert tags["dagster/partition"] == "bad"
    assert tags["dagster/partition_set"] == PARTITION_SET
    bad_run = api.launch_run("fetch_mailbox_job", tags=tags)

    # Once the fetch run's spool step is over, mail through Haraka can only reach the store
    # by the spool sensor's run.
    services.wait_for(
        lambda: (
            api.run(fetch_run)["steps"].get(fetch_step("ingest_spool")) == "SUCCESS"
            or api.run_status(fetch_run) in TERMINAL
        ),
        120,
        f"the spool step of {fetch_run}",
    )
    assert (
        haraka.send(
            _raw("smtp-1", address_of(store, good), "through haraka"),
            rcpt_to=[address_of(store, good)],
        )
        == {}
    )

    fetched = services.wait_for_run(fetch_run)
    # The run is flagged, by its last step only: every mailbox was tried, the lease released.
    assert fetched["status"] == "FAILURE", fetched
    assert fetched["steps"].pop(fetch_step("report_failed_mailboxes")) == "FAILURE", fetched
    assert set(fetched["steps"].values()) == {"SUCCESS"}, fetched
    assert _message_ids(store, good) == ["imap-good-1@e2e.test", "imap-good-2@e2e.test"]
    assert _message_ids(store, fine) == ["imap-fine-1@e2e.test"]
    assert _message_ids(store, bad) == []
    tasks = {t.email_source: t for t in store.tasks.recent(run_id=fetch_run)}
    assert tasks.keys() == {EmailSource.IMAP, EmailSource.HARAKA}
    imap_task = tasks[EmailSource.IMAP]
    assert imap_task.status is TaskStatus.COMPLETED
    assert imap_task.error_message.startswith("1 of 3 mailboxes failed: bad (auth: "), (
        imap_task.error_message
    )
    assert any("failed mailboxes: bad" in entry["message"] for entry in imap_task.log), (
        imap_task.log
    )
    assert imap_task.counters.saved == 3
    assert WRONG_PASSWORD not in str(imap_task.details)
    assert tasks[EmailSource.HARAKA].counters.saved == 0
    assert store.locks.get(FETCH_LOCK) is None  # released by the run itself
    mark("email_fetch_job failed by its verdict step; the bad mailbox recorded as failed")

    # The mailbox asset's check, per partition, as the UI's asset page reads it.
    statuses = check_partition_statuses(api)
    assert statuses == {"succeeded": ["fine", "good"], "failed": ["bad"]}, statuses
    latest = latest_evaluation(api, "bad")
    assert latest is not None and latest["status"] == "FAILED", latest
    health = latest["evaluation"]["metadata"]
    assert health["status"] == "failing" and health["last_error"].startswith("auth: "), health
    assert health["failing_since"] != "-" and health["last_success"] == "never", health
    good_health = latest_evaluation(api, "good")
    assert good_health is not None and good_health["status"] == "SUCCEEDED", good_health
    assert good_health["evaluation"]["metadata"]["last_success"] != "never"
    mark("the check of the mailbox asset fails for bad only")
    # The asset's partitions: bad is failed, so the backfill dialog offers it as failed.
    partitions = asset_partition_statuses(api)
    assert partitions["failed"] == ["bad"], partitions
    assert partitions["materialized"] == ["fine", "good"], partitions
    mark("bad is the mailbox asset's one failed partition")

    failed = services.wait_for_run(bad_run)
    assert failed["status"] == "FAILURE", failed
    assert failed["steps"] == {"fetch_mailbox_partition": "FAILURE"}
    (bad_task,) = store.tasks.recent(run_id=bad_run)
    assert bad_task.status is TaskStatus.FAILED
    assert "auth" in (bad_task.error_message or "").lower(), bad_task.error_message
    mark("the bad mailbox's partition run failed")

    # --- the mail sent through Haraka arrives by haraka_spool_sensor -> spool_ingest_job
    services.wait_for(
        lambda: "smtp-1@e2e.test" in _message_ids(store, good),
        90,
        "the mail sent through Haraka to reach the store (spool sensor)",
    )
    (saving_task,) = [
        t for t in store.tasks.recent(source=EmailSource.HARAKA, limit=100) if t.counters.saved == 1
    ]
    assert saving_task.run_id is not None
    spool_run = services.wait_for_run(saving_task.run_id)  # stored before the run ends
    assert spool_run["jobName"] == "spool_ingest_job" and spool_run["status"] == "SUCCESS"
    assert "mail_pipeline/new_files" in spool_run["tags"]  # requested by the sensor
    assert haraka.files("inbox") == [] and len(_processed(haraka)) == 2
    mark("mail through Haraka stored by the sensor's spool_ingest_job run")

    # --- a fetch run whose spool branch fails. The spool sensor is stopped (as from the UI)
    # so that only the re-execution can ingest what waits in the spool.
    assert api.stop_sensor("haraka_spool_sensor") == "STOPPED"
    both = [address_of(store, good), address_of(store, bad)]
    assert haraka.send(_raw("smtp-2", ", ".join(both), "for both"), rcpt_to=both) == {}
    assert len(haraka.messages()) == 1
    inbox = haraka.path("inbox")
    parked = haraka.spool_dir / "inbox.parked"
    inbox.rename(parked)
    inbox.write_text("not a directory\n")

    broken = services.wait_for_run(api.launch_run("email_fetch_job"))
    assert broken["status"] == "FAILURE", broken
    assert broken["steps"][fetch_step("ingest_spool")] == "FAILURE"
    assert broken["steps"][fetch_step("close_imap_fetch")] == "SUCCESS"
    assert broken["steps"].get(fetch_step("release_fetch_lock")) in (None, "SKIPPED")
    mark("the fetch run with a broken spool failed")

    # Three refused logins in a row (fetch run, partition run, this run): the circuit breaker
    # has paused the mailbox. The operator fixes the password, resumes the mailbox as the
    # failure message says, and backfills only the failed partition, from failure (its run
    # fetches IMAP only: nothing it stores can come from the re-execution below).
    paused = store.mailboxes.get(bad)
    assert paused is not None and paused.paused, paused
    manager = EmailConfigManager(store, SECRET)
    fixed = manager.get_email_config(bad)
    fixed["imap_config"]["password"] = dovecot.password_of(bad_login.username)
    manager.update_fetch_config(bad, fixed)
    resumed = subprocess.run(
        [str(VENV_BIN / "mail-pipeline"), "imap", "resume", "bad"],
        env={**services.env, "MAIL_PIPELINE_DATABASE_URL": store.url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 0, resumed
    backfill_id = api.launch_backfill(PARTITION_SET, ["bad"], from_failure=True)

    services.wait_for(
        lambda: store.locks.get(FETCH_LOCK) is None,
        90,
        "fetch_run_failure_sensor to free the lease of the failed run",
    )
    broken_tasks = {t.email_source: t for t in store.tasks.recent(run_id=broken["runId"])}
    spool_error = broken_tasks[EmailSource.HARAKA].error_message or ""
    assert broken_tasks[EmailSource.HARAKA].status is TaskStatus.FAILED
    assert "SpoolError" in spool_error and "inbox" in spool_error, spool_error
    assert broken_tasks[EmailSource.IMAP].status is TaskStatus.COMPLETED
    assert all(t.status.is_final for t in broken_tasks.values())
    mark("lease freed by fetch_run_failure_sensor")

    # --- the backfill's run re-executed the failed partition run and fetched the mailbox
    def backfill_run() -> dict[str, Any] | None:
        backfill = api.backfill(backfill_id)
        assert backfill["error"] is None, backfill["error"]
        runs = [r for r in backfill["runs"] if r["status"] in TERMINAL]
        return runs[0] if runs else None

    child = services.wait_for(backfill_run, 120, f"the run of backfill {backfill_id}")
    assert child["status"] == "SUCCESS", (child, services.diagnostics())
    assert child["parentRunId"] == bad_run and child["rootRunId"] == bad_run
    assert child["tags"]["dagster/partition"] == "bad"
    assert child["tags"]["dagster/backfill"] == backfill_id
    (child_task,) = store.tasks.recent(run_id=child["runId"])
    assert child_task.status is TaskStatus.COMPLETED and child_task.counters.saved == 1
    assert _message_ids(store, bad) == ["imap-bad-1@e2e.test"]
    assert check_partition_statuses(api)["failed"] == []  # bad is healthy again
    assert asset_partition_statuses(api)["failed"] == []  # and no longer a failed partition
    mark("from-failure backfill of the bad partition succeeded")

    # --- the spool repaired, re-execution from failure runs the spool branch only (and the
    # verdict: bad, which failed in the broken run, was fetched by the backfill since)
    inbox.unlink()
    parked.rename(inbox)
    retry = services.wait_for_run(api.reexecute(broken["runId"], "FROM_FAILURE"))
    assert retry["status"] == "SUCCESS", retry
    assert retry["parentRunId"] == broken["runId"]
    assert set(retry["steps"]) == {
        fetch_step(op) for op in ("ingest_spool", "release_fetch_lock", "report_failed_mailboxes")
    }
    assert _message_ids(store, good) == [
        "imap-good-1@e2e.test",
        "imap-good-2@e2e.test",
        "smtp-1@e2e.test",
        "smtp-2@e2e.test",
    ]
    (retry_task,) = store.tasks.recent(run_id=retry["runId"])
    assert retry_task.email_source is EmailSource.HARAKA
    assert retry_task.status is TaskStatus.COMPLETED and retry_task.counters.saved == 2
    assert haraka.files("inbox") == [] and len(_processed(haraka)) == 4
    assert store.locks.get(FETCH_LOCK) is None
    assert _message_ids(store, bad) == ["imap-bad-1@e2e.test", "smtp-2@e2e.test"]
    mark("re-execution from failure succeeded")


def address_of(store: MailStore, user_id: int) -> str:
    """The user's e-mail address (in the domain the test Haraka accepts)."""
    return store.users.get(user_id).email
