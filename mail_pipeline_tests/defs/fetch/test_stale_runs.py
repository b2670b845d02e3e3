"""Stale-task cleanup against real runs: one killed with SIGKILL that Dagster still shows
STARTED, and one alive but stuck on an IMAP server that never answers.

Each run is a real ``email_fetch_job`` run in a spawned process
(:func:`~mail_pipeline_tests.defs.fetch.job_process.run_fetch_job`), recorded in a persistent
Dagster instance that no daemon watches, and its one mailbox points at a
:class:`SilentServer`: the ``fetch_mailbox`` step waits for a greeting that never comes.
``mail-pipeline cleanup-stale`` runs as a subprocess of its own. So only the heartbeat can
tell the dead run from the live one.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mail_pipeline.defs.fetch.assets import fetch_step
from mail_pipeline.defs.resources import FETCH_LOCK
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.storage.store import EmailSource, TaskSnapshot, TaskStatus
from mail_pipeline_tests.defs.conftest import SECRET, Rig
from mail_pipeline_tests.defs.fetch.job_process import run_fetch_job
from mail_pipeline_tests.fixtures.servers import SilentServer

#: The runs' task timeout: a task is stale after 5 s without a heartbeat (one a second).
TIMEOUT = 5
ENTRY = "from mail_pipeline.cli import main; raise SystemExit(main())"


def _wait(check: Callable[[], bool], what: str, process: Any = None, limit: float = 120) -> None:
    """Poll ``check`` until true; fail if ``process`` died or after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not check():
        if process is not None:
            assert process.is_alive(), f"the run process ended before {what}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.1)


@dataclass
class StuckRun:
    """A fetch run in its own process, blocked on the silent server, and its IMAP task."""

    process: Any
    results: Any
    task_id: str
    run_id: str


@pytest.fixture
def dagster_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    yield home


def _run_status(home: Path, run_id: str) -> dg.DagsterRunStatus | None:
    """What the Dagster instance at ``home`` says of run ``run_id`` (None: unknown)."""
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        record = instance.get_run_by_id(run_id)
        return record.status if record is not None else None


def _start_stuck_run(rig: Rig, silent: SilentServer, home: Path) -> StuckRun:
    user = rig.store.users.add("frank", "frank@example.org")
    EmailConfigManager(rig.store, SECRET).update_fetch_config(
        user.id,
        {
            "imap_config": {
                "imap_host": "127.0.0.1",
                "imap_port": silent.port,
                "security": "plain",
                "username": "frank",
                "password": "pw",
            },
            "filter_config": {"folders": ["INBOX"], "max_age_days": None},
        },
    )
    config = {
        "database_url": rig.store.url,
        "attachment_root": str(rig.attachment_root),
        "spool_dir": str(rig.spool_dir),
        "secret_key": SECRET,
        "dagster_home": str(home),
        "task_timeout_seconds": TIMEOUT,
        "connect_timeout": 600,
        "read_timeout": 600,
    }
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    process = ctx.Process(target=run_fetch_job, args=(config, start, results))
    process.start()
    start.set()

    def imap_task() -> TaskSnapshot | None:
        found = rig.store.tasks.recent(source=EmailSource.IMAP, limit=1)
        return found[0] if found else None

    _wait(
        lambda: imap_task() is not None and silent.accepted > 0,
        "the run's fetch_mailbox step waiting on the silent server",
        process,
    )
    task = imap_task()
    assert task is not None and task.run_id is not None
    return StuckRun(process, results, task.task_id, task.run_id)


def _cleanup_stale(rig: Rig, tmp_path: Path, *, dagster_home: Path | None) -> str:
    """Run ``mail-pipeline cleanup-stale`` in a subprocess; return its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(
        MAIL_PIPELINE_DATABASE_URL=rig.store.url,
        MAIL_PIPELINE_HOME=str(tmp_path / "home"),
        MAIL_PIPELINE_SECRET_KEY=SECRET,
    )
    if dagster_home is not None:
        env["DAGSTER_HOME"] = str(dagster_home)
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, "cleanup-stale"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _step_output_metadata(home: Path, run_id: str, step_key: str) -> dict[str, object]:
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        entries = instance.all_logs(run_id)
    for entry in entries:
        event = entry.dagster_event
        if (
            event is not None
            and event.event_type_value == "STEP_OUTPUT"
            and event.step_key == step_key
        ):
            data = event.event_specific_data.metadata  # type: ignore[union-attr]
            return {key: value.value for key, value in data.items()}
    raise AssertionError(f"no output of {step_key}")


def test_a_killed_run_dagster_still_shows_started_is_cleaned_up_by_its_heartbeat(
    rig: Rig, silent_server: SilentServer, dagster_home: Path, tmp_path: Path
) -> None:
    """(a) kill -9 mid-fetch: after the timeout, cleanup closes the task and frees the lease."""
    run = _start_stuck_run(rig, silent_server, dagster_home)
    run.process.kill()  # SIGKILL: no finally, no sensor, no daemon
    run.process.join(timeout=60)
    assert run.process.exitcode == -9
    assert _run_status(dagster_home, run.run_id) is dg.DagsterRunStatus.STARTED
    lease = rig.store.locks.live(FETCH_LOCK)
    assert lease is not None and lease.run_id == run.run_id
    assert rig.store.tasks.get(run.task_id).status is TaskStatus.RUNNING

    _wait(
        lambda: rig.store.tasks.get(run.task_id).is_stale(rig.store.clock()),
        "the dead run's heartbeat expire",
    )
    out = _cleanup_stale(rig, tmp_path, dagster_home=dagster_home)  # Dagster says STARTED

    task = rig.store.tasks.get(run.task_id)
    assert task.status is TaskStatus.CANCELLED, out
    assert "stale task cleanup: no heartbeat for" in task.error_message
    assert f"released the lease(s) of run {run.run_id}" in out
    assert rig.store.locks.get(FETCH_LOCK) is None
    # Dagster still says STARTED: the heartbeat alone decided.
    assert _run_status(dagster_home, run.run_id) is dg.DagsterRunStatus.STARTED


def test_a_live_run_stuck_on_a_silent_server_keeps_its_task_then_survives_its_close(
    rig: Rig, silent_server: SilentServer, dagster_home: Path, tmp_path: Path
) -> None:
    """(b) a live run keeps beating: cleanup-stale without DAGSTER_HOME keeps its task, however
    old; (c) closed under the live op anyway, the run finishes, records it, frees the lease."""
    run = _start_stuck_run(rig, silent_server, dagster_home)
    try:
        created = rig.store.tasks.get(run.task_id).created_at
        _wait(
            lambda: rig.store.clock() - created > timedelta(seconds=2 * TIMEOUT),
            "the task grow older than twice its timeout",
            run.process,
        )
        assert silent_server.accepted == 1  # still the first attempt: stuck all along

        out = _cleanup_stale(rig, tmp_path, dagster_home=None)

        assert "cancelled 0 stale task(s)" in out, out
        task = rig.store.tasks.get(run.task_id)
        assert task.status is TaskStatus.RUNNING
        assert task.age(rig.store.clock()) > timedelta(seconds=2 * TIMEOUT)
        assert task.heartbeat_age(rig.store.clock()) < timedelta(seconds=TIMEOUT)
        lease = rig.store.locks.live(FETCH_LOCK)
        assert lease is not None and lease.run_id == run.run_id

        # (c) The task is closed under the live op anyway (an operator, a sensor).
        rig.store.tasks.mark_cancelled(run.task_id, "closed by hand while the run worked")
        silent_server.close()  # the server goes away: the mailbox fails, the run goes on
        success, run_id = run.results.get(timeout=300)
        run.process.join(timeout=60)
    finally:
        if run.process.is_alive():
            run.process.kill()
    # Every step ran; the mailbox failed, so the verdict step (last) marks the run failed.
    assert not success and run_id == run.run_id
    task = rig.store.tasks.get(run.task_id)
    assert task.status is TaskStatus.CANCELLED  # left as it was closed
    assert "after the task was closed" in task.log[-1]["message"]
    close = _step_output_metadata(dagster_home, run_id, fetch_step("close_imap_fetch"))
    assert close["task_closed_under_run"] is True and close["task_status"] == "CANCELLED"
    assert rig.store.locks.get(FETCH_LOCK) is None  # release_fetch_lock ran
