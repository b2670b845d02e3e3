"""A shard of mailboxes fetched at once, without Dagster: isolation, retries, the host cap.

The store runs on SQLite and PostgreSQL; the mailboxes are real Dovecot users, a port where
nothing listens (refused), and a server that accepts and never answers (silent).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mail_pipeline.intake.imap.circuit import MailboxCircuitBreaker
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.fetcher import MailboxFetcher
from mail_pipeline.intake.imap.results import ErrorKind
from mail_pipeline.intake.imap.shard import (
    HostGate,
    MailboxShard,
    ShardLimits,
    ShardMailbox,
    fetch_shard,
)
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import EmailSource, LockGrant, MailStore, TaskStatus
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.fixtures.servers import SilentServer

SECRET = "a passphrase for the shard tests"


def _configure(
    store: MailStore,
    name: str,
    *,
    port: int,
    login: str = "nobody",
    password: str = "pw",
    ca_file: str | None = None,
) -> ShardMailbox:
    user = store.users.add(name, f"{name}@example.org")
    imap = {
        "imap_host": "127.0.0.1",
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
    return ShardMailbox(user.id, name, "127.0.0.1")


def _dovecot_mailbox(
    store: MailStore, dovecot: DovecotServer, name: str, *, messages: int, password: str = ""
) -> ShardMailbox:
    mail_user = dovecot.new_user()
    for n in range(messages):
        dovecot.append(
            mail_user.username,
            (
                f"From: x@example.net\r\nTo: {name}@example.org\r\nSubject: m {n}\r\n"
                f"Message-ID: <shard-{name}-{n}@example.net>\r\n"
                f"Date: Tue, 01 Sep 2026 10:00:00 +0000\r\n\r\nhello {n}\r\n"
            ).encode(),
        )
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


def _fetcher(store: MailStore, tmp_path: Path, *, connect_timeout: float = 5) -> MailboxFetcher:
    saver = EmailSaveService(store, AttachmentStorage(tmp_path / "attachments", fsync=False))
    return MailboxFetcher(
        store,
        saver,
        EmailConfigManager(store, SECRET),
        connect_timeout=connect_timeout,
        read_timeout=connect_timeout,
    )


def _shard(store: MailStore, mailboxes: list[ShardMailbox]) -> MailboxShard:
    task = store.tasks.create(EmailSource.IMAP, run_id="r", status=TaskStatus.RUNNING)
    token = store.locks.acquire("email_fetch", 60, run_id="r")
    assert token
    return MailboxShard(task.task_id, LockGrant("email_fetch", token, 60), 3, tuple(mailboxes))


@pytest.mark.dovecot
def test_one_shard_stores_the_healthy_mailboxes_and_records_each_failure_alone(
    store: MailStore, tmp_path: Path, dovecot: DovecotServer, silent_server: SilentServer
) -> None:
    healthy = [_dovecot_mailbox(store, dovecot, f"ok{n}", messages=n + 1) for n in range(4)]
    wrong = _dovecot_mailbox(store, dovecot, "wrongpw", messages=2, password="not-it")
    refused = _configure(store, "refused", port=_closed_port())
    silent = _configure(store, "silent", port=silent_server.port)
    shard = _shard(store, [healthy[0], wrong, healthy[1], refused, healthy[2], silent, healthy[3]])
    delays: list[float] = []

    run = fetch_shard(
        store,
        _fetcher(store, tmp_path, connect_timeout=2),
        MailboxCircuitBreaker(store),
        shard,
        run_id="run-1",
        limits=ShardLimits(workers=8, per_host=8, max_retries=2, retry_delay=0.5),
        sleep=delays.append,
    )

    by_name = {r.result.username: r for r in run.runs}
    assert [r.result.username for r in run.runs] == [m.username for m in shard.mailboxes]
    for n, box in enumerate(healthy):
        assert by_name[box.username].result.ok
        assert store.messages.count(box.user_id) == n + 1
        state = store.mailboxes.get(box.user_id)
        assert state is not None and state.last_fetch.saved == n + 1
        assert state.last_fetch.run_id == "run-1" and state.last_fetch.seconds > 0
    assert by_name["wrongpw"].result.error_kind is ErrorKind.AUTH
    assert by_name["wrongpw"].extra["attempts"] == 1  # never retried
    assert store.messages.count(wrong.user_id) == 0
    assert by_name["refused"].result.error_kind is ErrorKind.CONNECT
    assert by_name["refused"].extra["attempts"] == 3  # quick transient error: retried twice
    assert delays == [0.5, 1.0]
    silent_result = by_name["silent"].result
    assert silent_result.error_kind is ErrorKind.CONNECT and silent_result.timed_out
    assert by_name["silent"].extra["attempts"] == 1  # a timeout waits for the next tick
    assert silent_server.accepted == 1
    for box, kind in ((wrong, "auth"), (refused, "connect"), (silent, "connect")):
        state = store.mailboxes.get(box.user_id)
        assert state is not None and state.last_error_kind == kind
        assert state.consecutive_failures == 1 and state.last_fetch.run_id == "run-1"
    assert sorted(line.split(":")[0] for line in run.errors) == ["refused", "silent", "wrongpw"]
    task = store.tasks.get(shard.task_id)
    assert task.counters.saved == 1 + 2 + 3 + 4
    meta = run.metadata()
    assert meta["mailboxes"] == 7 and meta["failed_mailboxes"] == 3
    assert meta["messages_saved"] == 10 and meta["shard"] == "shard_0003"
    rows = {row["user"]: row for row in meta["mailbox_rows"]}
    assert rows["wrongpw"]["error_kind"] == "auth" and rows["ok3"]["messages_saved"] == 4

    # A second fetch of the same shard stores nothing twice.
    assert store.locks.release("email_fetch", shard.lock.token)
    again = fetch_shard(
        store,
        _fetcher(store, tmp_path, connect_timeout=2),
        MailboxCircuitBreaker(store),
        _shard(store, list(shard.mailboxes)),
        run_id="run-2",
        limits=ShardLimits(workers=8, max_retries=0),
    )
    assert sum(r.counters.saved for r in again.results) == 0
    assert [store.messages.count(b.user_id) for b in healthy] == [1, 2, 3, 4]


def test_never_more_connections_to_one_host_than_its_cap(
    store: MailStore, tmp_path: Path, silent_server: SilentServer
) -> None:
    # Counted at the server: six mailboxes on one silent host, a cap of two, eight threads.
    boxes = [_configure(store, f"s{n}", port=silent_server.port) for n in range(6)]
    run = fetch_shard(
        store,
        _fetcher(store, tmp_path, connect_timeout=1),
        MailboxCircuitBreaker(store),
        _shard(store, boxes),
        run_id="r",
        limits=ShardLimits(workers=8, per_host=2, max_retries=0),
    )
    assert all(r.timed_out for r in run.results)
    assert silent_server.accepted == 6
    assert silent_server.max_open == 2


def test_a_host_gate_hands_out_per_host_slots() -> None:
    gate = HostGate(1)
    with gate.slot("a"), gate.slot("b"):  # another host never waits for "a"
        pass
    with pytest.raises(ValueError, match="per_host"):
        ShardLimits(per_host=0)
    with pytest.raises(ValueError, match="negative"):
        ShardLimits(retry_delay=-1)
