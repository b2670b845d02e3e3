"""email_fetch_job end to end in-process: real Dovecot, a real spool, SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import dagster as dg

from mail_pipeline.defs.fetch.assets import fetch_step
from mail_pipeline.defs.fetch.jobs import email_fetch_job
from mail_pipeline.defs.resources import FETCH_LOCK, AttachmentsResource
from mail_pipeline.maintenance.stale_tasks import close_tasks_of_run
from mail_pipeline.storage.store import EmailSource, TaskStatus
from mail_pipeline_tests.defs.conftest import SECRET, Rig, mailbox_row, output_metadata
from mail_pipeline_tests.defs.fetch.job_process import run_fetch_job
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.fixtures.faults import StorageFault
from mail_pipeline_tests.fixtures.spool_files import make_raw, write_pair


def _imap_message(n: int, to: str) -> bytes:
    return (
        f"From: x@example.net\r\nTo: {to}\r\nSubject: imap {n}\r\n"
        f"Message-ID: <imap-{n}-{to}>\r\nDate: Tue, 01 Sep 2026 10:00:00 +0000\r\n\r\n"
        f"hello {n}\r\n"
    ).encode()


def _run(rig: Rig, **kwargs: Any) -> dg.ExecuteInProcessResult:
    return email_fetch_job.execute_in_process(
        resources=rig.resources, raise_on_error=False, **kwargs
    )


def test_fetches_imap_and_spool_then_only_duplicates(rig: Rig, dovecot: DovecotServer) -> None:
    alice, alice_login = rig.add_imap_user(dovecot, "alice")
    bob, bob_login = rig.add_imap_user(dovecot, "bob")
    for n in range(3):
        dovecot.append(alice_login, _imap_message(n, "alice@example.org"))
    dovecot.append(bob_login, _imap_message(9, "bob@example.org"))
    write_pair(rig.spool_dir, make_raw(1, to="bob@example.org"), ["bob@example.org"])
    write_pair(
        rig.spool_dir, make_raw(2, to="list@example.org"), ["alice@example.org", "bob@example.org"]
    )

    result = _run(rig)
    assert result.success
    assert rig.store.messages.count(alice) == 3 + 1
    assert rig.store.messages.count(bob) == 1 + 2
    assert rig.store.locks.get(FETCH_LOCK) is None  # released
    tasks = rig.store.tasks.recent(run_id=result.run_id)
    assert {(t.email_source, t.status) for t in tasks} == {
        (EmailSource.IMAP, TaskStatus.COMPLETED),
        (EmailSource.HARAKA, TaskStatus.COMPLETED),
    }
    imap_task = next(t for t in tasks if t.email_source is EmailSource.IMAP)
    assert imap_task.counters.saved == 4
    close = result.output_for_node(fetch_step("close_imap_fetch"))
    assert close.failed_mailboxes == ()
    meta = output_metadata(result, fetch_step("close_imap_fetch"))
    assert meta["messages_saved"] == 4 and meta["mailboxes"] == 2
    assert meta["duplicates"] == 0 and meta["failed_mailboxes"] == 0
    assert output_metadata(result, fetch_step("ingest_spool"))["messages_saved"] == 3
    assert mailbox_row(result, "alice")["messages_saved"] == 3
    shard = output_metadata(result, fetch_step("fetch_mailbox_shard[shard_0000]"))
    assert shard["mailboxes"] == 2 and shard["messages_saved"] == 4

    again = _run(rig)
    assert again.success
    assert rig.store.messages.count() == 7
    retask = next(
        t for t in rig.store.tasks.recent(run_id=again.run_id) if t.email_source is EmailSource.IMAP
    )
    assert retask.counters.saved == 0


def test_too_large_imap_mail_is_counted_in_the_metadata_and_the_task(
    rig: Rig, dovecot: DovecotServer
) -> None:
    carol, carol_login = rig.add_imap_user(dovecot, "carol", max_message_bytes=100 * 1024)
    dovecot.append(carol_login, _imap_message(1, "carol@example.org"))
    big = _imap_message(2, "carol@example.org") + (b"x" * 998 + b"\r\n") * 300
    dovecot.append(carol_login, big)

    result = _run(rig)

    assert result.success
    assert rig.store.messages.count(carol) == 1
    mailbox = mailbox_row(result, "carol")
    assert (mailbox["too_large"], mailbox["failures"], mailbox["messages_saved"]) == (1, 1, 1)
    assert output_metadata(result, fetch_step("close_imap_fetch"))["too_large"] == 1
    imap_task = next(
        t
        for t in rig.store.tasks.recent(run_id=result.run_id)
        if t.email_source is EmailSource.IMAP
    )
    assert imap_task.counters.failed == 1
    assert any("too_large" in e["message"] and "102400" in e["message"] for e in imap_task.log)
    assert any("1 message(s) over the size limit" in e["message"] for e in imap_task.log)


def test_a_wrong_password_fails_only_that_mailbox(rig: Rig, dovecot: DovecotServer) -> None:
    good, good_login = rig.add_imap_user(dovecot, "good")
    rig.add_imap_user(dovecot, "bad", password="not-the-password")
    dovecot.append(good_login, _imap_message(1, "good@example.org"))
    write_pair(rig.spool_dir, make_raw(5, to="good@example.org"), ["good@example.org"])
    instance = dg.DagsterInstance.ephemeral()
    result = _run(rig, instance=instance)
    # Every step did its work; only the last one fails the run, naming the mailbox.
    assert not result.success
    failures = result.get_step_failure_events()
    assert result.get_failed_step_keys() == {fetch_step("report_failed_mailboxes")}
    assert {e.step_key for e in result.get_step_success_events()} >= {
        fetch_step("close_imap_fetch"),
        fetch_step("ingest_spool"),
        fetch_step("release_fetch_lock"),
    }
    failure = failures[0].step_failure_data
    assert failure.user_failure_data is not None
    assert failure.user_failure_data.description is not None
    assert failure.user_failure_data.description.startswith("1 of 2 mailboxes failed: bad (auth: ")
    assert "backfill the failed partitions of fetched_mail: bad" in (
        failure.user_failure_data.description
    )
    assert rig.store.messages.count(good) == 2
    summary = result.output_for_node(fetch_step("close_imap_fetch"))
    assert summary.failed_mailboxes == ("bad",)
    imap_task = next(
        t
        for t in rig.store.tasks.recent(run_id=result.run_id)
        if t.email_source is EmailSource.IMAP
    )
    assert imap_task.status is TaskStatus.COMPLETED
    assert imap_task.error_message.startswith("1 of 2 mailboxes failed: bad (auth: ")
    assert any("bad" in e["message"] for e in imap_task.log)
    assert "not-the-password" not in str(imap_task.details)
    assert rig.store.locks.get(FETCH_LOCK) is None
    # Each mailbox's partition of the mailbox asset says how its fetch went.
    checks = {e.partition: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {"good", "bad"}
    assert checks["good"].passed and not checks["bad"].passed
    assert checks["bad"].metadata["status"].value == "failing"
    assert str(checks["bad"].metadata["last_error"].value).startswith("auth: ")
    assert checks["bad"].metadata["failing_since"].value != "-"
    assert checks["good"].metadata["last_success"].value != "never"
    # Only the mailbox that was fetched is materialized (the failed one is left failed).
    assert [
        e.partition
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("fetched_mail")
    ] == ["good"]


def test_held_lock_records_skipped_tasks(rig: Rig) -> None:
    token = rig.store.locks.acquire(FETCH_LOCK, 600, run_id="someone-else")
    assert token
    write_pair(rig.spool_dir, make_raw(1), ["alice@example.org"])
    result = _run(rig)
    assert result.success
    tasks = rig.store.tasks.recent(run_id=result.run_id)
    assert len(tasks) == 2 and all(t.status is TaskStatus.SKIPPED for t in tasks)
    assert "someone-else" in tasks[0].log[-1]["message"]
    assert list((rig.spool_dir / "inbox").glob("*.meta"))  # nothing fetched
    # Its lease is untouched: only the holder releases.
    lease = rig.store.locks.live(FETCH_LOCK)
    assert lease is not None and lease.run_id == "someone-else"


def test_two_runs_at_once_never_fetch_together(rig: Rig, dovecot: DovecotServer) -> None:
    """Two runs started at once: one fetches, the other records SKIPPED tasks.

    Two spawned processes cannot be forced to overlap (one may finish before the other has
    imported Dagster), so the test checks the invariant itself: when both fetched, their
    fetch windows did not overlap. The held-lease path alone is tested deterministically in
    test_held_lock_records_skipped_tasks.
    """
    user, login = rig.add_imap_user(dovecot, "carol")
    for n in range(40):  # long enough that the two runs usually meet
        dovecot.append(login, _imap_message(n, "carol@example.org"))
    config = {
        "database_url": rig.store.url,
        "attachment_root": str(rig.attachment_root),
        "spool_dir": str(rig.spool_dir),
        "secret_key": SECRET,
    }
    ctx = multiprocessing.get_context("spawn")
    start, queue = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=run_fetch_job, args=(config, start, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    start.set()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(ok for ok, _ in results)
    runs = [rig.store.tasks.recent(run_id=run_id) for _, run_id in results]
    statuses = sorted(tuple(sorted(t.status.value for t in tasks)) for tasks in runs)
    if statuses == [("COMPLETED", "COMPLETED"), ("COMPLETED", "COMPLETED")]:
        windows = sorted(
            (min(t.created_at for t in tasks), max(t.completed_at for t in tasks if t.completed_at))
            for tasks in runs
        )
        assert windows[0][1] <= windows[1][0], f"the two runs fetched at once: {windows}"
    else:
        assert statuses == [("COMPLETED", "COMPLETED"), ("SKIPPED", "SKIPPED")]
    assert rig.store.messages.count(user) == 40


def test_expired_lease_of_a_killed_run_is_taken_over(rig: Rig) -> None:
    from datetime import UTC, datetime, timedelta

    from mail_pipeline.storage.store import MailStore

    past = MailStore(rig.store.url, clock=lambda: datetime.now(UTC) - timedelta(hours=1))
    assert past.locks.acquire(FETCH_LOCK, 600, run_id="killed") is not None
    past.dispose()
    write_pair(rig.spool_dir, make_raw(3), ["dave@example.org"])
    rig.store.users.add("dave", "dave@example.org")
    result = _run(rig)
    assert result.success
    assert rig.store.messages.count() == 1
    assert rig.store.locks.get(FETCH_LOCK) is None


def _with_attachment(n: int, to: str) -> bytes:
    head = _imap_message(n, to).split(b"\r\n\r\n", 1)[0]
    return head + (
        b'\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n'
        b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\n"
        b"Content-Type: text/plain\r\nContent-Disposition: attachment; "
        b'filename="f.txt"\r\n\r\nattached\r\n--b--\r\n'
    )


def test_a_storage_fault_fails_the_run_and_the_next_run_stores_everything(
    rig: Rig, dovecot: DovecotServer, storage_fault: StorageFault
) -> None:
    """A full or read-only attachment root fails both branches' ops, so the run fails; the
    spool pairs stay in the inbox and the IMAP cursor stays, and nothing lands in failed/."""
    alice, login = rig.add_imap_user(dovecot, "alice")
    for n in range(2):
        dovecot.append(login, _with_attachment(n, "alice@example.org"))
    for n in range(2):
        write_pair(
            rig.spool_dir,
            make_raw(n, to="alice@example.org", attachment=b"x" * 50),
            ["alice@example.org"],
        )
    resources = dict(rig.resources)
    resources["attachments"] = AttachmentsResource(root=str(storage_fault.path), fsync=False)
    storage_fault.inject()

    failed = email_fetch_job.execute_in_process(resources=resources, raise_on_error=False)

    assert not failed.success
    steps = {e.step_key for e in failed.all_events if e.event_type_value == "STEP_FAILURE"}
    assert {fetch_step("ingest_spool"), fetch_step("fetch_mailbox_shard[shard_0000]")} <= steps
    assert rig.store.messages.count() == 0
    assert len(list((rig.spool_dir / "inbox").glob("*.meta"))) == 2
    assert list((rig.spool_dir / "failed").iterdir()) == []
    assert rig.store.messages.sync_position(alice, "INBOX") is None
    tasks = {t.email_source: t for t in rig.store.tasks.recent(run_id=failed.run_id)}
    haraka = tasks[EmailSource.HARAKA]
    assert haraka.status is TaskStatus.FAILED and "StorageUnavailable" in haraka.error_message
    assert any("StorageUnavailable" in e["message"] for e in tasks[EmailSource.IMAP].log)
    # What the run-failure sensor does for a failed run (tested in test_sensors.py).
    close_tasks_of_run(rig.store, failed.run_id, failed=True, reason="test", lock_name=FETCH_LOCK)

    storage_fault.clear()
    healed = email_fetch_job.execute_in_process(resources=resources, raise_on_error=False)
    assert healed.success
    assert rig.store.messages.count(alice) == 4
    assert list((rig.spool_dir / "inbox").glob("*.meta")) == []


def test_kill_9_mid_shard_then_the_next_run_stores_every_message_once(
    rig: Rig, dovecot: DovecotServer
) -> None:
    """SIGKILL a run while its one shard is fetching four mailboxes at once: the re-run (once
    the dead run's lease has expired) loses nothing and stores nothing twice."""
    per_mailbox = 400
    users: list[tuple[int, str]] = []
    for name in ("kim", "lee", "max", "ned"):
        user, login = rig.add_imap_user(dovecot, name)
        with dovecot.client(login) as client:
            client.multiappend(
                "INBOX", [_imap_message(n, f"{name}@example.org") for n in range(per_mailbox)]
            )
        users.append((user, name))
    total = per_mailbox * len(users)
    config = {
        "database_url": rig.store.url,
        "attachment_root": str(rig.attachment_root),
        "spool_dir": str(rig.spool_dir),
        "secret_key": SECRET,
        "lock_ttl_seconds": 3,
        "task_timeout_seconds": 3,
    }
    ctx = multiprocessing.get_context("spawn")
    start, queue = ctx.Event(), ctx.Queue()
    process = ctx.Process(target=run_fetch_job, args=(config, start, queue))
    process.start()
    start.set()
    deadline = time.monotonic() + 120
    while rig.store.messages.count() == 0:
        assert process.is_alive() and time.monotonic() < deadline, "the run never saved"
        time.sleep(0.01)
    process.kill()  # mid-shard: some batches committed, the rest not
    process.join(timeout=60)
    stored_before = rig.store.messages.count()
    assert process.exitcode == -9
    assert 0 < stored_before < total, "the kill did not land mid-shard"

    time.sleep(4)  # the dead run's lease (3 s) expires; the next run takes it over
    result = _run(rig)

    assert result.success
    for user, name in users:
        ids = {m.message_id for m in rig.store.messages.summaries(user)}
        assert len(ids) == rig.store.messages.count(user) == per_mailbox, name
    assert rig.store.messages.count() == total
    shard = output_metadata(result, fetch_step("fetch_mailbox_shard[shard_0000]"))
    assert shard["failed_mailboxes"] == 0
    assert shard["messages_saved"] == total - stored_before
