"""The IMAP side of a fetch run, without Dagster: the plan, retry or record, closing the task.

The store runs on SQLite and PostgreSQL; the mailboxes are real Dovecot users (or a port where
nothing listens, for the transient error).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mail_pipeline.errors import NotFoundError
from mail_pipeline.intake.imap.circuit import MailboxCircuitBreaker
from mail_pipeline.intake.imap.config import SETTING_KEY, EmailConfigManager
from mail_pipeline.intake.imap.fetcher import MailboxFetcher
from mail_pipeline.intake.imap.results import ErrorKind, MailboxResult
from mail_pipeline.intake.imap.run import (
    MAX_SUMMARY_CHARS,
    FetchPlan,
    MailboxPausedError,
    close_fetch,
    failure_summary,
    fetch_named_mailbox,
    plan_fetch,
    should_retry,
)
from mail_pipeline.intake.imap.shard import MailboxShard, ShardMailbox
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import (
    EmailSource,
    LockGrant,
    MailStore,
    TaskCounters,
    TaskStatus,
)
from mail_pipeline_tests.fixtures.dovecot import DovecotServer

SECRET = "a passphrase for the imap run tests"


def _configure(
    store: MailStore,
    name: str,
    *,
    host: str = "127.0.0.1",
    port: int,
    login: str = "nobody",
    password: str = "pw",
    ca_file: str | None = None,
) -> int:
    """Add user ``name`` with an IMAP config; return its id."""
    user = store.users.add(name, f"{name}@example.org")
    imap = {
        "imap_host": host,
        "imap_ssl_port": port,
        "username": login,
        "password": password,
        "use_ssl": True,
    }
    if ca_file:
        imap["ca_file"] = ca_file
    EmailConfigManager(store, SECRET).update_fetch_config(
        user.id,
        {"imap_config": imap, "filter_config": {"folders": ["INBOX"], "max_age_days": None}},
    )
    return user.id


def _dovecot_user(
    store: MailStore, dovecot: DovecotServer, name: str, password: str | None = None
) -> int:
    mail_user = dovecot.new_user()
    return _configure(
        store,
        name,
        port=dovecot.imaps_port,
        login=mail_user.username,
        password=password or mail_user.password,
        ca_file=str(dovecot.ca_cert_path),
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fetcher(store: MailStore, tmp_path: Path) -> MailboxFetcher:
    saver = EmailSaveService(store, AttachmentStorage(tmp_path / "attachments", fsync=False))
    return MailboxFetcher(
        store, saver, EmailConfigManager(store, SECRET), connect_timeout=5, read_timeout=10
    )


def _result(
    kind: ErrorKind, name: str = "u", *, too_large: int = 0, saved: int = 0
) -> MailboxResult:
    return MailboxResult(
        1,
        name,
        kind,
        "" if kind is ErrorKind.NONE else f"{kind.value} error",
        (),
        TaskCounters(saved=saved),
        0.5,
        (),
        too_large=too_large,
    )


def test_the_plan_takes_valid_unpaused_mailboxes_and_logs_the_others(store: MailStore) -> None:
    alice = _configure(store, "alice", port=993)
    bob = store.users.add("bob", "bob@example.org")
    store.users.set_setting(bob.id, SETTING_KEY, {"imap_config": {"imap_host": ""}})
    carol = _configure(store, "carol", port=993)
    MailboxCircuitBreaker(store, auth_failures_to_pause=1).record(
        MailboxResult(carol, "carol", ErrorKind.AUTH, "login refused", (), TaskCounters(), 0.1, ())
    )
    store.users.add("nomail", "nomail@example.org")

    plan = plan_fetch(store, EmailConfigManager(store, SECRET), run_id="r1", timeout_seconds=77)

    assert plan.mailboxes == (ShardMailbox(alice, "alice", "127.0.0.1"),)
    assert plan.metadata() == {
        "users": 1,
        "hosts": 1,
        "invalid_configs": 1,
        "paused_mailboxes": 1,
    }
    task = store.tasks.get(plan.task_id)
    assert task.status is TaskStatus.RUNNING and task.email_source is EmailSource.IMAP
    assert task.run_id == "r1" and task.timeout_seconds == 77
    logged = [e["message"] for e in task.log if e["level"] == "WARNING"]
    assert logged == list(plan.warnings) and len(logged) == 2
    assert logged[0].startswith("bob: invalid IMAP config: ") and "imap_host" in logged[0]
    assert logged[1].startswith("carol: mailbox paused since ")
    assert "login refused" in logged[1] and "`mail-pipeline imap resume carol`" in logged[1]
    lock = LockGrant("email_fetch", "token", 60)
    (shard,) = plan.shards(lock, 500)
    assert (
        shard == MailboxShard(plan.task_id, lock, 0, plan.mailboxes) and shard.key == "shard_0000"
    )


def test_shards_cut_the_plan_in_order_and_one_gives_a_step_per_mailbox() -> None:
    boxes = tuple(ShardMailbox(n, f"u{n}", "h") for n in range(5))
    plan = FetchPlan("t", boxes)
    lock = LockGrant("email_fetch", "token", 60)
    assert [s.mailboxes for s in plan.shards(lock, 2)] == [boxes[:2], boxes[2:4], boxes[4:]]
    assert [s.key for s in plan.shards(lock, 1)] == [f"shard_{n:04d}" for n in range(5)]
    assert FetchPlan("t", ()).shards(lock, 3) == []
    with pytest.raises(ValueError, match="shard size"):
        plan.shards(lock, 0)


def test_only_a_transient_error_with_retries_left_is_retried() -> None:
    assert should_retry(_result(ErrorKind.CONNECT), 0, 2)
    assert should_retry(_result(ErrorKind.CONNECT), 1, 2)
    assert not should_retry(_result(ErrorKind.CONNECT), 2, 2)
    assert not should_retry(_result(ErrorKind.CONNECT), 0, 0)
    for kind in (
        ErrorKind.NONE,
        ErrorKind.AUTH,
        ErrorKind.TLS,
        ErrorKind.PROTOCOL,
        ErrorKind.CONFIG,
    ):
        assert not should_retry(_result(kind), 0, 2), kind


def test_close_fails_the_task_only_when_every_mailbox_failed(store: MailStore) -> None:
    def task() -> str:
        return store.tasks.create(EmailSource.IMAP, run_id="r", status=TaskStatus.RUNNING).task_id

    some = task()
    closed = close_fetch(
        store,
        some,
        [_result(ErrorKind.NONE, "a", saved=2, too_large=1), _result(ErrorKind.AUTH, "b")],
    )
    snapshot = store.tasks.get(some)
    assert snapshot.status is TaskStatus.COMPLETED
    # completed, but it says what failed where an operator looks first
    assert snapshot.error_message == "1 of 2 mailboxes failed: b (auth: auth error)"
    assert closed.summary == snapshot.error_message
    assert closed.failed == ("b",) and closed.counters.saved == 2
    assert any(
        e["message"] == "failed mailboxes: b" and e["level"] == "WARNING" for e in snapshot.log
    )
    assert any(
        "1 message(s) over the size limit left on the server" in e["message"] for e in snapshot.log
    )
    assert closed.errors == ("IMAP fetch: 1 of 2 mailbox(es) failed: b (auth: auth error)",)
    assert closed.metadata() == {
        "task_status": "COMPLETED",
        "task_closed_under_run": False,
        "mailboxes": 2,
        "failed_mailboxes": 1,
        "messages_saved": 2,
        "duplicates": 0,
        "failures": 0,
        "too_large": 1,
        "seconds": 1.0,
    }

    every = task()
    closed = close_fetch(
        store, every, [_result(ErrorKind.AUTH, "a"), _result(ErrorKind.CONNECT, "b")]
    )
    snapshot = store.tasks.get(every)
    assert snapshot.status is TaskStatus.FAILED
    assert snapshot.error_message == (
        "2 of 2 mailboxes failed: a (auth: auth error), b (connect: connect error)"
    )

    fine = task()
    closed = close_fetch(store, fine, [_result(ErrorKind.NONE, "a")])
    assert store.tasks.get(fine).error_message == "" and closed.summary == ""

    nothing = task()
    closed = close_fetch(store, nothing, [])
    assert store.tasks.get(nothing).status is TaskStatus.COMPLETED
    assert closed.errors == () and closed.warnings == ()


def test_the_failure_summary_names_each_failed_mailbox_within_its_bound() -> None:
    results = [_result(ErrorKind.NONE, "ok")] + [
        _result(ErrorKind.AUTH, f"user{n:03d}") for n in range(300)
    ]
    summary = failure_summary(results)
    assert summary.startswith("300 of 301 mailboxes failed: user000 (auth: auth error), user001")
    assert len(summary) <= MAX_SUMMARY_CHARS
    shown = summary.count("(auth: auth error)")
    assert 0 < shown < 300 and summary.endswith(f", ... and {300 - shown} more")
    # a long server answer is cut, on one line
    noisy = MailboxResult(
        2, "noisy", ErrorKind.PROTOCOL, "NO\n" + "x" * 5000, (), TaskCounters(), 0.1, ()
    )
    one = failure_summary([noisy])
    assert "\n" not in one and one.endswith("...)") and len(one) < 250
    assert failure_summary([_result(ErrorKind.NONE)]) == ""
    assert len(failure_summary(results, limit=80)) <= 80


def test_a_long_failure_summary_fits_the_task_row(store: MailStore) -> None:
    task = store.tasks.create(EmailSource.IMAP, run_id="r", status=TaskStatus.RUNNING)
    results = [_result(ErrorKind.NONE, "ok")] + [
        _result(ErrorKind.CONNECT, f"user{n:03d}") for n in range(500)
    ]
    closed = close_fetch(store, task.task_id, results)
    snapshot = store.tasks.get(task.task_id)
    assert snapshot.status is TaskStatus.COMPLETED
    assert snapshot.error_message == closed.summary
    assert snapshot.error_message.startswith("500 of 501 mailboxes failed: user000 (connect: ")
    assert len(snapshot.error_message) <= MAX_SUMMARY_CHARS


def test_close_keeps_a_task_closed_under_the_run(store: MailStore) -> None:
    task = store.tasks.create(EmailSource.IMAP, run_id="r", status=TaskStatus.RUNNING)
    store.tasks.mark_cancelled(task.task_id, "stale task cleanup: no heartbeat")
    closed = close_fetch(store, task.task_id, [_result(ErrorKind.NONE)])
    assert store.tasks.get(task.task_id).status is TaskStatus.CANCELLED
    assert closed.metadata()["task_closed_under_run"] is True
    assert closed.metadata()["task_status"] == "CANCELLED"
    (line,) = closed.warnings
    assert "was already CANCELLED" in line and "when this op finished it" in line


def test_a_named_mailbox_that_is_paused_or_unknown_gets_no_task(
    store: MailStore, tmp_path: Path
) -> None:
    uid = _configure(store, "fay", port=993)
    breaker = MailboxCircuitBreaker(store, auth_failures_to_pause=1)
    breaker.record(
        MailboxResult(uid, "fay", ErrorKind.AUTH, "refused", (), TaskCounters(), 0.1, ())
    )
    fetcher = _fetcher(store, tmp_path)
    with pytest.raises(MailboxPausedError, match="imap resume fay"):
        fetch_named_mailbox(
            store,
            fetcher,
            breaker,
            "fay",
            run_id="r",
            timeout_seconds=60,
            retry_number=0,
            max_retries=2,
        )
    with pytest.raises(NotFoundError):
        fetch_named_mailbox(
            store,
            fetcher,
            breaker,
            "nobody",
            run_id="r",
            timeout_seconds=60,
            retry_number=0,
            max_retries=2,
        )
    assert store.tasks.recent(run_id="r") == []


@pytest.mark.dovecot
def test_a_named_mailbox_closes_its_own_task(
    store: MailStore, tmp_path: Path, dovecot: DovecotServer
) -> None:
    good = _dovecot_user(store, dovecot, "gil")
    _dovecot_user(store, dovecot, "hal", password="wrong")
    fetcher, breaker = _fetcher(store, tmp_path), MailboxCircuitBreaker(store)

    ok = fetch_named_mailbox(
        store,
        fetcher,
        breaker,
        "gil",
        run_id="r",
        timeout_seconds=60,
        retry_number=0,
        max_retries=2,
    )
    assert ok.result.ok and not ok.retry and ok.errors == ()
    assert ok.extra == {"task_status": "COMPLETED", "task_closed_under_run": False}
    state = store.mailboxes.get(good)
    assert state is not None and state.last_success_at is not None

    bad = fetch_named_mailbox(
        store,
        fetcher,
        breaker,
        "hal",
        run_id="r2",
        timeout_seconds=60,
        retry_number=0,
        max_retries=2,
    )
    assert bad.result.error_kind is ErrorKind.AUTH and not bad.retry
    (task,) = store.tasks.recent(run_id="r2")
    assert task.status is TaskStatus.FAILED and task.error_message.startswith("hal: ")
    assert task.timeout_seconds == 60 and bad.extra["task_status"] == "FAILED"
