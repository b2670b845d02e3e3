"""The parse worker pool: the same outcomes as parsing here, no message lost when a worker is
killed or hangs (a hung one is killed after its deadline), workers started only when needed
and stopped by ``close``."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from mail_pipeline.mime.parse_pool import (
    AnswerDeadline,
    ParseFailure,
    ParsePool,
    parse_outcome,
    parse_outcomes,
    shared_parse_pool,
)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
EXTRA = [
    b"",  # empty
    b"this is not an e-mail at all\r\n",  # not_a_message
    b"From: a@example.org\r\nSubject: binary\r\n\r\n\x00\x01\x02",
]


def corpus() -> list[bytes]:
    raws = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
    assert len(raws) > 20
    return raws + EXTRA


@pytest.fixture
def pool() -> Iterator[ParsePool]:
    made = ParsePool(1)
    yield made
    made.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with suppress(ChildProcessError):  # reap it if it is ours
            os.waitpid(pid, os.WNOHANG)
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_outcomes_equal_parsing_in_process(pool: ParsePool) -> None:
    raws = corpus()
    expected = parse_outcomes(raws)
    got = pool.submit(raws).result()
    assert got == expected
    assert all(
        g.raw is r for g, r in zip(got, raws, strict=True) if not isinstance(g, ParseFailure)
    )  # the raw bytes are the caller's own, not a copy sent back
    failures = [g for g in got if isinstance(g, ParseFailure)]
    assert {f.error.split(":")[0] for f in failures} >= {"empty", "not_a_message"}
    assert pool.deaths == 0 and len(pool.pids()) == 1


def test_attachment_contents_survive_the_trip(pool: ParsePool) -> None:
    raws = [r for r in corpus() if b"attachment" in r.lower()]
    for here, there in zip(parse_outcomes(raws), pool.submit(raws).result(), strict=True):
        if isinstance(here, ParseFailure):
            assert here == there
            continue
        assert not isinstance(there, ParseFailure)
        assert [a.content for a in here.attachments] == [a.content for a in there.attachments]


def test_two_workers_keep_the_order() -> None:
    raws = corpus()
    two = ParsePool(2)
    try:
        assert two.submit(raws).result() == parse_outcomes(raws)
        assert len(two.pids()) == 2
    finally:
        two.close()


def test_no_worker_starts_before_a_request(pool: ParsePool) -> None:
    assert pool.pids() == []
    assert pool.submit([]).result() == []
    assert pool.pids() == []


def test_a_killed_worker_loses_no_message(pool: ParsePool) -> None:
    raws = corpus()
    expected = parse_outcomes(raws)
    pool.submit(raws[:1]).result()
    (pid,) = pool.pids()
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid)
    assert pool.submit(raws).result() == expected  # parsed again here
    assert pool.deaths == 1
    assert pool.submit(raws).result() == expected  # and a new worker is started
    (new_pid,) = pool.pids()
    assert new_pid != pid


def test_a_worker_killed_mid_request_loses_no_message(pool: ParsePool) -> None:
    raws = corpus() * 20
    expected = parse_outcomes(raws)
    pool.submit(raws[:1]).result()
    (pid,) = pool.pids()
    job = pool.submit(raws)
    threading.Timer(0.05, os.kill, (pid, signal.SIGKILL)).start()
    assert job.result() == expected
    assert wait_gone(pid)


def test_after_max_restarts_the_pool_parses_in_process() -> None:
    raws = corpus()[:5]
    expected = parse_outcomes(raws)
    limited = ParsePool(1, max_restarts=0)
    try:
        limited.submit(raws).result()
        (pid,) = limited.pids()
        os.kill(pid, signal.SIGKILL)
        assert wait_gone(pid)
        assert limited.submit(raws).result() == expected
        assert limited.submit(raws).result() == expected
        assert limited.pids() == [] and limited.deaths == 1
    finally:
        limited.close()


#: A deadline short enough for a test, long enough for a worker's start on a busy machine.
SHORT = AnswerDeadline(base=3.0, per_mib=0.0)
#: How long a test waits for a result that a hung worker's deadline must bring.
PATIENCE = 60.0


#: Bytes a Linux pipe holds by default: a request below it is written whole to a stopped worker.
PIPE_BUFFER = 64 * 1024


@pytest.mark.parametrize("fits", [True, False], ids=["answer-unread", "request-unwritten"])
def test_a_stopped_worker_is_killed_and_its_chunk_parsed_here(
    fits: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A few messages fit in the pipe (the wait is for the answer); the corpus twenty times
    over does not (the request itself cannot be written)."""
    raws = corpus()[:8] if fits else corpus() * 20
    assert (sum(map(len, raws)) < PIPE_BUFFER // 2) is fits
    expected = parse_outcomes(raws)
    hanging = ParsePool(1, deadline=SHORT)
    try:
        hanging.submit(raws[:1]).result()
        (pid,) = hanging.pids()
        os.kill(pid, signal.SIGSTOP)
        with caplog.at_level(logging.WARNING, logger="mail_pipeline.mime.parse_pool"):
            got = hanging.submit(raws).result(timeout=PATIENCE)
        assert got == expected  # one outcome per raw, in order, none twice
        assert wait_gone(pid)  # killed (and reaped), though stopped
        assert hanging.deaths == 1
        (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert f"parse worker {pid} did not answer within 3.0 s" in warning.getMessage()
        assert hanging.submit(raws[:3]).result(timeout=PATIENCE) == expected[:3]
        (new_pid,) = hanging.pids()  # a new worker answered
        assert new_pid != pid
    finally:
        for pid in hanging.pids():
            os.kill(pid, signal.SIGCONT)
        hanging.close()


def test_a_worker_that_resumes_before_its_deadline_is_kept(pool: ParsePool) -> None:
    raws = corpus()
    pool.submit(raws[:1]).result()
    (pid,) = pool.pids()
    os.kill(pid, signal.SIGSTOP)
    job = pool.submit(raws)
    try:
        with pytest.raises(TimeoutError):
            job.result(timeout=0.5)  # the default deadline is far off
    finally:
        os.kill(pid, signal.SIGCONT)
    assert job.result() == parse_outcomes(raws)
    assert pool.deaths == 0 and pool.pids() == [pid]


def test_hung_workers_count_towards_the_restart_limit() -> None:
    raws = corpus()[:5]
    expected = parse_outcomes(raws)
    limited = ParsePool(1, max_restarts=0, deadline=SHORT)
    try:
        limited.submit(raws).result()
        (pid,) = limited.pids()
        os.kill(pid, signal.SIGSTOP)
        assert limited.submit(raws).result(timeout=PATIENCE) == expected
        assert wait_gone(pid)
        assert limited.submit(raws).result() == expected
        assert limited.pids() == [] and limited.deaths == 1  # in-process from now on
    finally:
        limited.close()


def test_the_deadline_grows_with_the_request() -> None:
    deadline = AnswerDeadline(base=30.0, per_mib=5.0)
    assert deadline.seconds(0) == 30.0
    assert deadline.seconds(3 * 1024 * 1024) == 45.0
    assert AnswerDeadline().seconds(1024 * 1024) > AnswerDeadline().seconds(0) > 0
    with pytest.raises(ValueError, match="base"):
        AnswerDeadline(base=0.0)
    with pytest.raises(ValueError, match="per MiB"):
        AnswerDeadline(per_mib=-1.0)


def test_close_stops_the_workers_and_refuses_more_work() -> None:
    closing = ParsePool(2)
    closing.submit(corpus()).result()
    pids = closing.pids()
    assert len(pids) == 2
    closing.close()
    closing.close()  # idempotent
    assert all(wait_gone(pid, 0.5) for pid in pids)
    with pytest.raises(RuntimeError, match="closed"):
        closing.submit([b"From: a@b\r\n\r\nx"])


def test_close_waits_for_the_request_in_hand() -> None:
    raws = corpus() * 10
    closing = ParsePool(1)
    job = closing.submit(raws)
    closing.close()
    assert job.result() == parse_outcomes(raws)


def test_a_parser_bug_is_a_failure_of_that_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from mail_pipeline.mime import parse_pool as module

    def broken(raw: bytes) -> object:
        raise KeyError("boom")

    monkeypatch.setattr(module, "parse_message", broken)
    failure = parse_outcome(b"From: a@b\r\n\r\nx")
    assert isinstance(failure, ParseFailure) and failure.unexpected
    assert failure.error == "KeyError('boom')" and "KeyError" in failure.traceback


def test_the_shared_pool_is_one_per_process_and_replaced_once_closed() -> None:
    first = shared_parse_pool()
    assert shared_parse_pool() is first
    first.close()
    second = shared_parse_pool()
    assert second is not first and not second.closed


def test_constructor_checks_arguments() -> None:
    with pytest.raises(ValueError, match="workers"):
        ParsePool(0)
    with pytest.raises(ValueError, match="max_restarts"):
        ParsePool(1, max_restarts=-1)


PARENT = """
import sys, time
from mail_pipeline.mime.parse_pool import ParsePool
pool = ParsePool(1)
pool.submit([b"From: a@example.org\\r\\n\\r\\nhello"]).result()
print(pool.pids()[0], flush=True)
time.sleep(3600)
"""


def test_a_worker_exits_when_its_parent_is_killed() -> None:
    """No orphan keeps running (and holding the parent's output pipes) after ``kill -9``."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert alive(worker)
        parent.kill()
        parent.wait()
        assert wait_gone(worker)
        assert parent.stdout.read() == b""  # the pipe closed: nobody else holds it
    finally:
        parent.kill()
        parent.wait()
