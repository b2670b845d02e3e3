"""The parse step of a folder sync: a large sync parses in the worker process with the same
result as in-process parsing (order, cursor, quarantined UIDs); a message over a MiB is parsed
in-process even then; a small or idle one never starts a worker; a worker killed or hung
mid-sync loses no message and stores none twice."""

from __future__ import annotations

import base64
import datetime as dt
import os
import random
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from pathlib import Path

import pytest

from mail_pipeline.intake.imap import parse_stage
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.fetcher import MailboxFetcher
from mail_pipeline.intake.imap.parse_stage import (
    IN_PROCESS_ABOVE_BYTES,
    parse_batch,
    wants_process,
)
from mail_pipeline.intake.imap.sync import Batch
from mail_pipeline.intake.imap.wire import RawMessage
from mail_pipeline.mime.parse_pool import (
    AnswerDeadline,
    ParseFailure,
    ParseJob,
    ParsePool,
    parse_outcomes,
    shared_parse_pool,
)
from mail_pipeline.mime.results import ParsedMessage
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.intake.imap.mailboxes import (
    Mailbox,
    assert_ok,
    message,
    stored_subjects,
    with_attachment,
)

WHEN = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
GARBAGE = b"this is not an e-mail at all, just a line of text\r\n"


@pytest.fixture
def pool() -> Iterator[ParsePool]:
    made = ParsePool(1)
    yield made
    made.close()


def batches(*sizes: int) -> list[Batch]:
    out, uid = [], 1
    for size in sizes:
        uids = tuple(range(uid, uid + size))
        out.append(Batch(uids, uids, ()))
        uid += size
    return out


def test_wants_process_only_for_several_batches_with_enough_messages() -> None:
    assert wants_process(batches(100, 100, 100), 300)
    assert not wants_process(batches(100, 100, 99), 300)
    assert not wants_process(batches(400), 300)  # one batch: nothing to overlap
    assert not wants_process(batches(100, 100, 100), None)
    assert not wants_process([], 1)


@pytest.mark.parametrize("in_worker", [False, True])
def test_parse_batch_sets_aside_too_large_and_keeps_order(in_worker: bool, pool: ParsePool) -> None:
    small = [message(1), GARBAGE, with_attachment(message(4), "a.bin")]
    limit = max(map(len, small))
    big = message(3, body="x" * limit)
    messages = [
        RawMessage(1, WHEN, small[0]),
        RawMessage(2, None, small[1]),
        RawMessage(3, WHEN, big),
        RawMessage(4, WHEN, small[2]),
    ]
    batch = parse_batch(messages, limit=limit, pool=pool if in_worker else None).result()
    assert batch.fetched == 4
    assert batch.too_large == [(3, len(big))]
    assert [m.uid for m, _ in batch.parsed] == [1, 2, 4]
    outcomes = dict((m.uid, o) for m, o in batch.parsed)
    assert isinstance(outcomes[2], ParseFailure) and "not_a_message" in outcomes[2].error
    assert not isinstance(outcomes[1], ParseFailure)
    assert bool(pool.pids()) is in_worker


def with_big_attachment(n: int, size: int) -> bytes:
    """A message of about ``size`` bytes: a text body and one base64 attachment."""
    blob = random.Random(n).randbytes(size * 57 // 78)
    encoded = base64.encodebytes(blob).replace(b"\n", b"\r\n")
    head, _, _body = message(n).partition(b"\r\n\r\n")
    return (
        head + b'\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nthe file\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; "
        b'filename="big.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n' + encoded + b"--b--\r\n"
    )


def count_submits(pool: ParsePool, monkeypatch: pytest.MonkeyPatch) -> list[list[bytes]]:
    """Record the raws of every ``pool.submit`` from now on; return the record."""
    sent: list[list[bytes]] = []
    original = pool.submit

    def submit(raws: Sequence[bytes]) -> ParseJob:
        sent.append(list(raws))
        return original(raws)

    monkeypatch.setattr(pool, "submit", submit)
    return sent


def test_a_big_message_is_parsed_here_in_fetch_order(
    pool: ParsePool, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = with_big_attachment(3, IN_PROCESS_ABOVE_BYTES + 100_000)
    assert len(big) > IN_PROCESS_ABOVE_BYTES
    raws = [message(1), with_attachment(message(2), "a.txt"), big, GARBAGE, message(5)]
    messages = [RawMessage(uid, WHEN, raw) for uid, raw in enumerate(raws, start=1)]
    sent = count_submits(pool, monkeypatch)

    batch = parse_batch(messages, limit=10 * len(big), pool=pool).result()

    assert sent == [[r for r in raws if r is not big]]  # one request, without the big one
    assert [m.uid for m, _ in batch.parsed] == [1, 2, 3, 4, 5]
    assert [o for _, o in batch.parsed] == parse_outcomes(raws)
    assert batch.too_large == [] and batch.fetched == 5
    parsed_big = batch.parsed[2][1]
    assert isinstance(parsed_big, ParsedMessage)
    (attachment,) = parsed_big.attachments
    data = attachment.source.data  # still a view into the fetched bytes: no copy made
    assert isinstance(data, memoryview) and data.obj is big
    assert pool.pids()  # the small ones went to the worker


def test_a_batch_of_big_messages_only_never_starts_a_worker(
    pool: ParsePool, monkeypatch: pytest.MonkeyPatch
) -> None:
    raws = [with_big_attachment(n, IN_PROCESS_ABOVE_BYTES + 1) for n in (1, 2)]
    messages = [RawMessage(uid, WHEN, raw) for uid, raw in enumerate(raws, start=1)]
    sent = count_submits(pool, monkeypatch)
    batch = parse_batch(messages, limit=10 * len(raws[0]), pool=pool).result()
    assert sent == [] and pool.pids() == []
    assert [o for _, o in batch.parsed] == parse_outcomes(raws)


def fetcher_with(
    store: MailStore, configs: EmailConfigManager, root: Path, min_messages: int | None
) -> MailboxFetcher:
    save = EmailSaveService(store, AttachmentStorage(root, fsync=False))
    return MailboxFetcher(
        store,
        save,
        configs,
        batch_size=3,
        connect_timeout=5,
        read_timeout=10,
        parse_process_min_messages=min_messages,
    )


def fill(box: Mailbox) -> tuple[list[int], int]:
    """Eleven messages over four batches, one garbage; return (uids, the garbage UID)."""
    uids, bad = [], 0
    for n in range(11):
        if n == 4:
            bad = box.append(GARBAGE)
            uids.append(bad)
        elif n % 3 == 0:
            uids.append(box.append(with_attachment(message(n), f"f{n}.txt")))
        else:
            uids.append(box.append(message(n)))
    return uids, bad


@pytest.mark.dovecot
def test_a_large_sync_in_the_worker_stores_what_in_process_parsing_does(
    store: MailStore,
    configs: EmailConfigManager,
    mailbox: Callable[..., Mailbox],
    tmp_path: Path,
) -> None:
    here, there = mailbox(), mailbox()
    uids_here, bad_here = fill(here)
    uids_there, bad_there = fill(there)
    shared = shared_parse_pool()
    before = list(shared.pids())

    local = fetcher_with(store, configs, tmp_path / "a", None).fetch_user(here.id)
    assert shared.pids() == before  # never started for an in-process sync
    remote = fetcher_with(store, configs, tmp_path / "b", 2).fetch_user(there.id)
    assert shared.pids()  # the worker parsed this one

    for result, box, uids, bad in (
        (local, here, uids_here, bad_here),
        (remote, there, uids_there, bad_there),
    ):
        assert_ok(result)
        assert (result.counters.fetched, result.counters.saved, result.counters.failed) == (
            11,
            10,
            1,
        )
        ((folder, uid, reason),) = result.failed_uids
        assert (folder, uid) == ("INBOX", bad) and "not_a_message" in reason
        position = store.messages.sync_position(box.id, "INBOX")
        assert position is not None and position.last_uid == uids[-1]
    assert stored_subjects(store, here.id) == stored_subjects(store, there.id)
    assert local.failed_uids[0][2] == remote.failed_uids[0][2]


@pytest.mark.dovecot
def test_a_worker_killed_during_a_sync_loses_no_message(
    store: MailStore,
    configs: EmailConfigManager,
    mailbox: Callable[..., Mailbox],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box = mailbox()
    uids, _bad = fill(box)
    shared = shared_parse_pool()
    shared.submit([message(0)]).result()  # started
    killed = _signal_the_worker_once(monkeypatch, signal.SIGKILL)
    result = fetcher_with(store, configs, tmp_path, 2).fetch_user(box.id)
    assert killed
    assert_ok(result)
    assert (result.counters.saved, result.counters.failed) == (10, 1)
    position = store.messages.sync_position(box.id, "INBOX")
    assert position is not None and position.last_uid == uids[-1]


@pytest.mark.dovecot
def test_a_worker_hung_during_a_sync_is_killed_and_loses_no_message(
    store: MailStore,
    configs: EmailConfigManager,
    mailbox: Callable[..., Mailbox],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box = mailbox()
    uids, _bad = fill(box)
    shared = shared_parse_pool()
    monkeypatch.setattr(shared, "deadline", AnswerDeadline(base=2.0, per_mib=0.0))
    shared.submit([message(0)]).result()  # started
    deaths = shared.deaths
    stopped = _signal_the_worker_once(monkeypatch, signal.SIGSTOP)
    try:
        result = fetcher_with(store, configs, tmp_path, 2).fetch_user(box.id)
    finally:
        for pid in stopped:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    assert stopped
    assert shared.deaths == deaths + 1 and stopped[0] not in shared.pids()
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(stopped[0], 0)
    assert_ok(result)
    assert (result.counters.saved, result.counters.failed) == (10, 1)
    subjects = stored_subjects(store, box.id)
    assert len(subjects) == len(set(subjects)) == 10  # every message once
    position = store.messages.sync_position(box.id, "INBOX")
    assert position is not None and position.last_uid == uids[-1]


def _signal_the_worker_once(monkeypatch: pytest.MonkeyPatch, signum: int) -> list[int]:
    """Make the folder sync send ``signum`` to the pool's worker just before it hands the
    first batch to it; return the list the signalled pid is put in."""
    from mail_pipeline.intake.imap import folder as folder_module

    original = parse_stage.parse_batch
    signalled: list[int] = []

    def signal_then_parse(
        messages: list[RawMessage], *, limit: int, pool: ParsePool | None
    ) -> object:
        if pool is not None and not signalled and pool.pids():
            signalled.append(pool.pids()[0])
            os.kill(signalled[0], signum)
        return original(messages, limit=limit, pool=pool)

    monkeypatch.setattr(folder_module, "parse_batch", signal_then_parse)
    return signalled
