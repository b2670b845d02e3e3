"""Parse batches of raw messages in worker processes, so parsing overlaps the caller's work.

:class:`ParsePool` keeps up to ``workers`` child processes, each a plain Python process fed
through a pipe (``python -c ... serve()``): the parent writes one length-prefixed pickle of a
list of raw messages to the child's stdin and reads one pickle of their
:data:`ParseOutcome` back from its stdout. A pipe-fed child rather than
:mod:`multiprocessing`:

* it is started with ``subprocess`` (fork + exec), never a bare ``fork`` of a process that
  has threads and database connections;
* its stdin's only writer is the parent, so when the parent dies (even ``kill -9``) the child
  reads end-of-file and exits: no orphan keeps the parent's output pipes open;
* a child that dies (OOM killer, SIGKILL) is seen as end-of-file or a broken pipe on its own
  request only;
* a child that hangs (alive but silent: a parser stuck in a pathological message, a stopped
  process) is seen too: the parent writes the request and reads the answer through
  :mod:`selectors`, waiting at most the request's :class:`AnswerDeadline` (a base plus an
  allowance per MiB of raw messages), then kills the child.

Guarantees: :meth:`ParsePool.submit` gives back one outcome per message, in order, equal to
:func:`parse_outcome` in the calling process (the outcome of a message that does not parse
is a :class:`ParseFailure` with its reason). A worker that dies, answers garbage or does not
answer within its deadline (it is then killed, with a WARNING naming its pid and the wait)
never loses a message and never has one counted twice: its chunk is parsed again in this
process (in the pool's I/O thread), its answer, if any, is dropped, and a worker is started
again on the next request, at most :data:`MAX_RESTARTS` times; after that the pool parses in
this process only. Processes are started lazily, on the first request that needs them, so a
process that never parses a large batch never pays their start.

:func:`shared_parse_pool` is the one pool of this process (closed at exit). No Dagster
imports.
"""

from __future__ import annotations

import atexit
import copyreg
import dataclasses
import io
import logging
import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mail_pipeline.errors import MessageParseError
from mail_pipeline.mime.parse import parse_message
from mail_pipeline.mime.results import ParsedMessage

__all__ = [
    "ANSWER_BASE_SECONDS",
    "ANSWER_SECONDS_PER_MIB",
    "MAX_RESTARTS",
    "AnswerDeadline",
    "ParseFailure",
    "ParseJob",
    "ParseOutcome",
    "ParsePool",
    "WorkerDied",
    "WorkerHung",
    "parse_outcome",
    "parse_outcomes",
    "serve",
    "shared_parse_pool",
]

log = logging.getLogger(__name__)

#: How many times a pool starts a worker again after one died; then it parses in-process.
MAX_RESTARTS = 3
#: Seconds :meth:`ParsePool.close` waits for a worker to exit after its stdin is closed.
CLOSE_TIMEOUT = 5.0

# How long a worker may take to answer one request before it is taken as hung: a base plus an
# allowance per MiB of the request's raw messages. Measured on this 2-core machine (load ≈1,
# 2026-12-03), with the messages of bench/big_message.py: parse_outcome of a 20 KB message takes
# 0.8 ms (text and a base64 attachment) to 8 ms (quoted-printable HTML), of a 5 MiB one 80 ms
# (attachment, 63 MiB/s) to 2.1 s (HTML, 2.4 MiB/s); a request's round trip through a worker
# (pickles and pipes included) is 17-42 MiB/s for attachments and 2.4-3.0 MiB/s for HTML, 500
# HTML messages of 20 KB taking 4.0 s. The slowest kind, HTML, thus costs ≈0.42 s per MiB:
# the allowance of 5 s per MiB is 12 times that, for a loaded, shared machine and its swap.
# The base covers what does not grow with the size: the worker's start (0.42 s measured:
# interpreter and parser imports) and the per-message costs, 70 times over. A 25 MiB request
# may take 155 s; a worker hung on it costs that once, then its chunk is parsed here.
#: Seconds every request to a worker may take, whatever its size.
ANSWER_BASE_SECONDS = 30.0
#: Seconds more a request to a worker may take per MiB of raw messages.
ANSWER_SECONDS_PER_MIB = 5.0

_LENGTH = struct.Struct(">Q")
_MIB = 1024 * 1024
_CHILD_CODE = "from mail_pipeline.mime.parse_pool import serve; serve()"


@dataclass(frozen=True)
class ParseFailure:
    """A message that did not parse: ``error`` is the text of the parser's
    :class:`~mail_pipeline.errors.MessageParseError`, or, when ``unexpected``, the ``repr`` of
    another exception (a parser bug) with its ``traceback``."""

    error: str
    unexpected: bool = False
    traceback: str = ""


#: What parsing one message gives: the parsed message or why it did not parse.
ParseOutcome = ParsedMessage | ParseFailure


def parse_outcome(raw: bytes) -> ParseOutcome:
    """Parse ``raw``; return the :class:`ParsedMessage`, or a :class:`ParseFailure` for a
    message that does not parse or an exception of the parser (never raises for those)."""
    try:
        return parse_message(raw)
    except MessageParseError as exc:
        return ParseFailure(str(exc))
    except Exception as exc:  # a parser bug must harm only this message
        return ParseFailure(repr(exc), unexpected=True, traceback=traceback.format_exc())


def parse_outcomes(raws: Sequence[bytes]) -> list[ParseOutcome]:
    """Return :func:`parse_outcome` of each of ``raws``, in order, in this process."""
    return [parse_outcome(raw) for raw in raws]


@dataclass(frozen=True)
class AnswerDeadline:
    """How long a worker may take to answer a request: ``base`` seconds plus ``per_mib``
    seconds per MiB of its raw messages (defaults: :data:`ANSWER_BASE_SECONDS`,
    :data:`ANSWER_SECONDS_PER_MIB`).

    Raises:
        ValueError: ``base`` is not positive or ``per_mib`` is negative.
    """

    base: float = ANSWER_BASE_SECONDS
    per_mib: float = ANSWER_SECONDS_PER_MIB

    def __post_init__(self) -> None:
        if not self.base > 0:
            raise ValueError(f"the deadline's base must be positive, got {self.base!r}")
        if not self.per_mib >= 0:
            raise ValueError(f"the deadline per MiB must be at least 0, got {self.per_mib!r}")

    def seconds(self, size: int) -> float:
        """Return the seconds allowed for a request of ``size`` bytes of raw messages."""
        return self.base + self.per_mib * size / _MIB


class WorkerDied(Exception):
    """A parse worker exited, or answered something that is not a result, mid-request."""


class WorkerHung(WorkerDied):
    """A parse worker did not answer within its deadline (``waited`` seconds)."""

    def __init__(self, waited: float) -> None:
        super().__init__(f"no answer within {waited:.1f} s")
        self.waited = waited


# --- the child -------------------------------------------------------------------------------


def _read_frame(stream: IO[bytes]) -> bytes | None:
    """Return the next length-prefixed frame of ``stream``; None at a clean end-of-file.

    Raises:
        WorkerDied: the stream ended inside a frame.
    """
    head = stream.read(_LENGTH.size)
    if not head:
        return None
    if len(head) != _LENGTH.size:
        raise WorkerDied("the stream ended inside a frame header")
    (size,) = _LENGTH.unpack(head)
    body = stream.read(size)
    if len(body) != size:
        raise WorkerDied(f"the stream ended after {len(body)} of {size} bytes")
    return body


def _write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_LENGTH.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _memoryview_as_bytes(view: memoryview) -> tuple[type[bytes], tuple[bytes]]:
    return bytes, (view.tobytes(),)


def _dumps_answer(answer: object) -> bytes:
    """Pickle an answer; a ``memoryview`` (an attachment's view into its message's bytes)
    travels as a copy of the bytes it shows, which unpickle as ``bytes``."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {**copyreg.dispatch_table, memoryview: _memoryview_as_bytes}
    pickler.dump(answer)
    return buffer.getvalue()


def _without_raw(outcome: ParseOutcome) -> ParseOutcome:
    """The outcome to send back: the parent has the raw bytes already."""
    if isinstance(outcome, ParsedMessage):
        return dataclasses.replace(outcome, raw=b"")
    return outcome


def serve(stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> None:
    """The worker's loop: read a pickled list of raw messages per frame from ``stdin``, write
    back a pickled ``("ok", outcomes)`` (each :class:`ParsedMessage` without its ``raw``),
    or ``("error", text)`` when the answer cannot be built; return at end-of-file or when the
    parent is gone (broken pipe). SIGINT is ignored: the parent decides when to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    source = stdin if stdin is not None else sys.stdin.buffer
    sink = stdout if stdout is not None else sys.stdout.buffer
    try:
        while (frame := _read_frame(source)) is not None:
            try:
                raws: list[bytes] = pickle.loads(frame)
                answer = _dumps_answer(("ok", [_without_raw(parse_outcome(raw)) for raw in raws]))
            except Exception as exc:  # an unreadable request or an unpicklable result
                answer = pickle.dumps(("error", repr(exc)))
            _write_frame(sink, answer)
    except (BrokenPipeError, WorkerDied):
        return  # the parent is gone


# --- the parent ------------------------------------------------------------------------------


class _Worker:
    """One child process and the request it is answering (used by one I/O thread only).

    Its pipes are used through their file descriptors, never through buffered files: the
    request is written without blocking (a hung child may stop reading) and the answer read
    when :mod:`selectors` says it is there, so no wait outlasts the deadline.
    """

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            env=env,
            close_fds=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._request_fd = self.process.stdin.fileno()
        self._answer_fd = self.process.stdout.fileno()
        os.set_blocking(self._request_fd, False)

    def parse(self, raws: Sequence[bytes], timeout: float) -> list[ParseOutcome]:
        """Send ``raws`` and return the worker's outcomes, each with its ``raw`` put back,
        waiting at most ``timeout`` seconds for the whole exchange.

        Raises:
            WorkerHung: no full answer came within ``timeout`` (the worker is left running).
            WorkerDied: the worker exited, or its answer is not a result for ``raws``.
        """
        try:
            frame = self._exchange(
                pickle.dumps(list(raws), protocol=pickle.HIGHEST_PROTOCOL), timeout
            )
        except (BrokenPipeError, ConnectionResetError, ValueError) as exc:
            raise WorkerDied(f"the worker's pipe failed: {exc!r}") from exc
        try:
            status, body = pickle.loads(frame)
        except Exception as exc:
            raise WorkerDied(f"unreadable answer: {exc!r}") from exc
        if status != "ok" or not isinstance(body, list) or len(body) != len(raws):
            raise WorkerDied(f"the worker could not answer: {body!r}"[:500])
        return [
            dataclasses.replace(outcome, raw=bytes(raw))
            if isinstance(outcome, ParsedMessage)
            else outcome
            for outcome, raw in zip(body, raws, strict=True)
        ]

    def _exchange(self, request: bytes, timeout: float) -> bytearray:
        """Write ``request`` as one frame and return the body of the answer frame, waiting
        at most ``timeout`` seconds in all (both pipes are watched at once: no write or read
        blocks).

        Raises:
            WorkerHung: the answer was not complete after ``timeout`` seconds.
            WorkerDied: the worker closed its stdout before a full answer.
            BrokenPipeError: the worker closed its stdin (it exited) before the full request.
        """
        end = time.monotonic() + timeout
        outgoing = [memoryview(_LENGTH.pack(len(request))), memoryview(request)]
        head = bytearray(_LENGTH.size)
        body: bytearray | None = None
        filled = 0
        with selectors.DefaultSelector() as selector:
            selector.register(self._request_fd, selectors.EVENT_WRITE)
            selector.register(self._answer_fd, selectors.EVENT_READ)
            while True:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise WorkerHung(timeout)
                for key, _events in selector.select(remaining):
                    if key.fd == self._request_fd:
                        with suppress(BlockingIOError):  # the pipe filled up meanwhile
                            written = os.write(self._request_fd, outgoing[0])
                            outgoing[0] = outgoing[0][written:]
                        while outgoing and not outgoing[0]:
                            outgoing.pop(0)
                        if not outgoing:
                            selector.unregister(self._request_fd)
                        continue
                    target = memoryview(head if body is None else body)
                    got = os.readv(self._answer_fd, [target[filled:]])
                    if got == 0:
                        where = "header" if body is None else f"body ({filled} of {len(target)})"
                        raise WorkerDied(f"the worker exited before its answer's {where} ended")
                    filled += got
                    if filled < len(target):
                        continue
                    if body is None:
                        (size,) = _LENGTH.unpack(head)
                        body, filled = bytearray(size), 0
                    if filled == len(body):
                        return body

    def kill(self) -> None:
        """Kill the worker (even a stopped one), reap it and close its pipes."""
        with suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with suppress(OSError):  # a broken pipe on the final flush
                    stream.close()

    def stop(self, timeout: float) -> None:
        """Close the worker's stdin (it exits at end-of-file), wait, kill it if it stays."""
        self._close_pipes()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class _Slot:
    """One worker place of a pool: its I/O thread and, once started, its worker."""

    def __init__(self, pool: ParsePool, index: int) -> None:
        self.pool = pool
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"parse-pool-{index}")
        self.worker: _Worker | None = None

    def parse(self, raws: Sequence[bytes]) -> list[ParseOutcome]:
        """Runs in the slot's I/O thread: parse ``raws`` in the worker (started if needed),
        waiting at most the pool's deadline for them, or, when the worker dies or hangs (it is
        then killed) or the pool may no longer start one, in this process. Returns one outcome
        per raw, in order, whichever way."""
        if self.worker is None and self.pool.may_start():
            try:
                self.worker = _Worker()
            except OSError as exc:
                log.warning("parse worker could not start (%s); parsing in-process", exc)
                self.pool.count_death()
        if self.worker is None:
            return parse_outcomes(raws)
        worker = self.worker
        try:
            return worker.parse(raws, self.pool.deadline.seconds(sum(map(len, raws))))
        except WorkerHung as exc:
            log.warning(
                "parse worker %d did not answer within %.1f s; killed it, parsing its %d "
                "message(s) in-process",
                worker.process.pid,
                exc.waited,
                len(raws),
            )
            worker.kill()
        except WorkerDied as exc:
            log.warning(
                "parse worker %d failed (%s, exit code %s); parsing its %d message(s) in-process",
                worker.process.pid,
                exc,
                worker.process.poll(),
                len(raws),
            )
            worker.stop(0.0)
        self.worker = None
        self.pool.count_death()
        return parse_outcomes(raws)

    def close(self, timeout: float) -> None:
        """Wait for the request in hand, then stop the worker."""
        self.executor.shutdown(wait=True)
        if self.worker is not None:
            self.worker.stop(timeout)
            self.worker = None


class ParseJob:
    """The outcomes of one :meth:`ParsePool.submit`, parsed in the background."""

    def __init__(self, parts: list[Future[list[ParseOutcome]]]) -> None:
        self._parts = parts

    def done(self) -> bool:
        """Return True when every outcome is ready."""
        return all(part.done() for part in self._parts)

    def result(self, timeout: float | None = None) -> list[ParseOutcome]:
        """Wait (at most ``timeout`` seconds in all; None: as long as it takes) for and return
        the outcomes, one per submitted message, in order.

        Raises:
            TimeoutError: ``timeout`` passed first (the parse goes on; ask again).
            Exception: only what the pool's own machinery raised (a bug); a message that does
                not parse is a :class:`ParseFailure`, a dead or hung worker's chunk is parsed
                again in-process.
        """
        end = None if timeout is None else time.monotonic() + timeout
        out: list[ParseOutcome] = []
        for part in self._parts:
            out += part.result(None if end is None else max(0.0, end - time.monotonic()))
        return out


class ParsePool:
    """Up to ``workers`` parse worker processes (see the module docstring).

    Thread-safe: several threads may submit; each worker answers its requests in order.
    """

    def __init__(
        self,
        workers: int = 1,
        *,
        max_restarts: int = MAX_RESTARTS,
        deadline: AnswerDeadline = AnswerDeadline(),
    ) -> None:
        """``deadline``: how long a worker may take to answer a request before it is killed
        (counted as a death) and the request parsed in this process.

        Raises:
            ValueError: ``workers`` < 1 or ``max_restarts`` < 0.
        """
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers!r}")
        if max_restarts < 0:
            raise ValueError(f"max_restarts must be at least 0, got {max_restarts!r}")
        self.workers = workers
        self.max_restarts = max_restarts
        self.deadline = deadline
        self._lock = threading.Lock()
        self._slots = [_Slot(self, i) for i in range(workers)]
        self._next = 0
        self._deaths = 0
        self._closed = False

    @property
    def deaths(self) -> int:
        """How many workers died, hung (and were killed) or could not start so far."""
        with self._lock:
            return self._deaths

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        with self._lock:
            return self._closed

    def may_start(self) -> bool:
        """Return True while a worker may still be started (deaths ≤ ``max_restarts``)."""
        with self._lock:
            return not self._closed and self._deaths <= self.max_restarts

    def count_death(self) -> None:
        """Record that a worker died or hung; past ``max_restarts`` the pool parses in-process."""
        with self._lock:
            self._deaths += 1
            if self._deaths == self.max_restarts + 1:
                log.error(
                    "%d parse workers died; this process parses in-process from now on",
                    self._deaths,
                )

    def pids(self) -> list[int]:
        """Return the process ids of the running workers (for tests and diagnostics)."""
        with self._lock:
            slots = list(self._slots)
        return [s.worker.process.pid for s in slots if s.worker is not None]

    def submit(self, raws: Sequence[bytes]) -> ParseJob:
        """Start parsing ``raws`` in the workers (split into contiguous chunks, one per
        worker) and return at once.

        Returns:
            The :class:`ParseJob` whose ``result()`` is one outcome per message, in order.

        Raises:
            RuntimeError: the pool is closed.
        """
        raws = list(raws)
        with self._lock:
            if self._closed:
                raise RuntimeError("the parse pool is closed")
            if not raws:
                return ParseJob([_done_future([])])
            size = -(-len(raws) // min(self.workers, len(raws)))  # ceiling division
            parts: list[Future[list[ParseOutcome]]] = []
            for start in range(0, len(raws), size):
                slot = self._slots[self._next]
                self._next = (self._next + 1) % self.workers
                parts.append(slot.executor.submit(slot.parse, raws[start : start + size]))
        return ParseJob(parts)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Let the requests in hand finish, then stop every worker (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            slots = list(self._slots)
        for slot in slots:
            slot.close(timeout)


def _done_future(value: list[ParseOutcome]) -> Future[list[ParseOutcome]]:
    future: Future[list[ParseOutcome]] = Future()
    future.set_result(value)
    return future


_shared_lock = threading.Lock()
_shared: tuple[int, ParsePool] | None = None


def shared_parse_pool(workers: int = 1) -> ParsePool:
    """Return this process's one :class:`ParsePool` (created on the first call, with
    ``workers``; a later call's ``workers`` is ignored), closed at interpreter exit. A forked
    child or a caller after :meth:`ParsePool.close` gets a new pool."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared[0] != os.getpid() or _shared[1].closed:
            pool, owner = ParsePool(workers), os.getpid()
            atexit.register(lambda: pool.close() if os.getpid() == owner else None)
            _shared = (owner, pool)
        return _shared[1]
