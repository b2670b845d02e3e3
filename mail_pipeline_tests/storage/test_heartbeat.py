"""TaskHeartbeat: a live run's task and lease stay fresh, from a thread, while the work blocks."""

from __future__ import annotations

import pytest

from mail_pipeline.errors import LeaseLostError
from mail_pipeline.storage.heartbeat import BEATS_PER_TIMEOUT, TaskHeartbeat
from mail_pipeline.storage.store import EmailSource, LockGrant, MailStore, TaskStatus
from mail_pipeline_tests.fixtures.servers import wait_until


def _grant(store: MailStore, ttl: int = 60, run_id: str = "r") -> LockGrant:
    token = store.locks.acquire("email_fetch", ttl, run_id=run_id)
    assert token
    return LockGrant("email_fetch", token, ttl)


def test_beats_renew_the_task_and_the_lease_while_the_work_blocks(store: MailStore) -> None:
    task = store.tasks.create(EmailSource.IMAP, run_id="r", status=TaskStatus.RUNNING)
    grant = _grant(store)
    first_lease = store.locks.get("email_fetch")
    assert first_lease is not None
    # The block's work is the main thread polling: only the background thread can beat.
    with TaskHeartbeat(store, task.task_id, lease=grant, run_id="r", interval=0.05) as beat:

        def renewed() -> bool:
            lease = store.locks.get("email_fetch")
            return (
                store.tasks.get(task.task_id).heartbeat_at > task.heartbeat_at
                and lease is not None
                and lease.expires_at > first_lease.expires_at
            )

        wait_until(renewed, 60, "a background heartbeat")
    assert not beat.task_closed and not beat.lease_lost and beat.last_error == ""
    assert beat._thread is not None and not beat._thread.is_alive()  # stopped with the block


def test_a_task_closed_under_the_work_is_noticed_and_the_lease_kept(store: MailStore) -> None:
    task = store.tasks.create(EmailSource.IMAP, run_id="r", status=TaskStatus.RUNNING)
    grant = _grant(store)
    with TaskHeartbeat(store, task.task_id, lease=grant, run_id="r", interval=0.05) as beat:
        store.tasks.mark_cancelled(task.task_id, "stale task cleanup: no heartbeat")
        store.locks.release_for_run(None, "r")  # cleanup also freed the lease
        wait_until(
            lambda: beat.task_closed and store.locks.live("email_fetch") is not None,
            60,
            "the heartbeat notice the closed task and re-take the lease",
        )
    assert store.tasks.get(task.task_id).status is TaskStatus.CANCELLED
    assert not beat.lease_lost


def test_a_lease_held_by_another_run_refuses_to_start(store: MailStore) -> None:
    task = store.tasks.create(EmailSource.IMAP, run_id="r", status=TaskStatus.RUNNING)
    _grant(store, run_id="other")
    mine = LockGrant("email_fetch", "not-the-holder", 60)
    beat = TaskHeartbeat(store, task.task_id, lease=mine, run_id="r")
    with pytest.raises(LeaseLostError), beat:
        pass
    assert beat.lease_lost and beat._thread is None


def test_the_interval_follows_the_shorter_timeout(store: MailStore) -> None:
    task = store.tasks.create(EmailSource.IMAP, status=TaskStatus.RUNNING, timeout_seconds=50)
    with TaskHeartbeat(store, task.task_id) as alone:
        pass
    assert alone.interval == 50 / BEATS_PER_TIMEOUT
    with TaskHeartbeat(store, task.task_id, lease=_grant(store, ttl=20)) as leased:
        pass
    assert leased.interval == 20 / BEATS_PER_TIMEOUT
    with pytest.raises(ValueError):
        TaskHeartbeat(store, task.task_id, interval=0)
