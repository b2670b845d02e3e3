"""The parse step of a folder sync: a fetched batch's messages parsed here or in a worker.

:func:`parse_batch` sets aside the messages over the account's limit (their RFC822.SIZE
understated them) and parses the others, either in this thread when the result is asked for
(``pool`` None: exactly when the batch is committed, as a small sync always does) or at once in
a worker process of a :class:`~mail_pipeline.mime.parse_pool.ParsePool`, so that a large
folder sync parses batch N while batch N-1 is saved and batch N+1 is fetched. Both give the
same outcomes; a worker that dies or hangs has its messages parsed again in this process.

Even with a pool, a message over :data:`IN_PROCESS_ABOVE_BYTES` never goes to the worker: it
is parsed in this thread at :meth:`PendingBatch.result`, while the worker has the others, and
:attr:`ParsedBatch.parsed` is still in the order fetched. A parsed message's attachments are
views into its raw bytes; a worker's answer arrives as fresh bytes, so the parent would hold
each big attachment twice (the raw and the copy), against the big-message memory bound.

:func:`wants_process` is the rule for when the process is worth it: a folder sync with at
least ``min_messages`` messages to fetch over more than one batch (an idle or nearly idle
mailbox never starts a worker).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mail_pipeline.intake.imap.sync import Batch
from mail_pipeline.intake.imap.wire import RawMessage
from mail_pipeline.mime.parse_pool import ParseJob, ParseOutcome, ParsePool, parse_outcome
from mail_pipeline.platform.settings import DEFAULT_PARSE_WORKER_MIN_MESSAGES

__all__ = [
    "DEFAULT_PROCESS_MIN_MESSAGES",
    "IN_PROCESS_ABOVE_BYTES",
    "ParsedBatch",
    "PendingBatch",
    "parse_batch",
    "wants_process",
]

#: Messages to fetch from which a folder sync parses in a worker process. Starting the worker
#: costs ≈0.5 s of CPU once per process (interpreter and parser imports); parsing costs
#: ≈0.7-1 ms per 20 KB message, so below a few hundred messages the overlap does not pay.
#: The operator's setting is MAIL_PIPELINE_PARSE_WORKER_MIN_MESSAGES.
DEFAULT_PROCESS_MIN_MESSAGES = DEFAULT_PARSE_WORKER_MIN_MESSAGES

#: Messages larger than this are parsed in this process even when a worker parses the batch.
#: Through a worker, a message's attachments come back as copies, so the parent holds up to
#: twice the message until it is saved. Below 1 MiB that copy is small against a batch's own
#: raws; above it, a big message (up to the 25 MiB limit) would break the 3x peak-memory bound
#: of bench/big_message.py. What the worker would save is little: here a 1 MiB message parses
#: in 16 ms (a base64 attachment) to 0.4 s (quoted-printable HTML, the slowest kind), and
#: messages above a MiB are a few percent of a typical mailbox.
IN_PROCESS_ABOVE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ParsedBatch:
    """A fetched batch after its parse step.

    ``parsed``: each message within the limit with its outcome, in the order fetched.
    ``too_large``: (uid, bytes) of the fetched messages over the limit, left unparsed.
    ``fetched``: how many messages the FETCH gave.
    """

    parsed: list[tuple[RawMessage, ParseOutcome]]
    too_large: list[tuple[int, int]]
    fetched: int


class PendingBatch:
    """A batch being parsed; :meth:`result` waits for the worker's part of the parse and does
    the rest in this thread."""

    def __init__(
        self,
        within: list[RawMessage],
        too_large: list[tuple[int, int]],
        fetched: int,
        job: ParseJob | None,
        in_worker: list[bool],
    ) -> None:
        """``within``: the messages to parse, in the order fetched; ``in_worker``: for each of
        them, whether it is among those ``job`` parses (in their order); the others are
        parsed here at :meth:`result`."""
        self._within = within
        self._too_large = too_large
        self._fetched = fetched
        self._job = job
        self._in_worker = in_worker

    def result(self) -> ParsedBatch:
        """Return the :class:`ParsedBatch`, its ``parsed`` in the order fetched: the messages
        the worker does not have are parsed in this thread first, then the worker's outcomes
        are waited for.

        Raises:
            RuntimeError: the worker's job gave another number of outcomes than it was sent
                (a bug of the pool).
        """
        here = {
            i: parse_outcome(m.raw) for i, m in enumerate(self._within) if not self._in_worker[i]
        }
        there = self._job.result() if self._job is not None else []
        if len(there) != len(self._within) - len(here):
            raise RuntimeError(
                f"the parse worker gave {len(there)} outcomes for "
                f"{len(self._within) - len(here)} messages"
            )
        sent = iter(there)
        outcomes = [here[i] if i in here else next(sent) for i in range(len(self._within))]
        return ParsedBatch(
            list(zip(self._within, outcomes, strict=True)), self._too_large, self._fetched
        )


def parse_batch(
    messages: Sequence[RawMessage], *, limit: int, pool: ParsePool | None
) -> PendingBatch:
    """Set aside the ``messages`` over ``limit`` bytes and start parsing the others: those of
    at most :data:`IN_PROCESS_ABOVE_BYTES` in a worker of ``pool`` now, the rest (all of them
    when ``pool`` is None) in this thread at :meth:`PendingBatch.result`.

    Returns:
        The :class:`PendingBatch`.

    Raises:
        RuntimeError: ``pool`` is closed.
    """
    within: list[RawMessage] = []
    too_large: list[tuple[int, int]] = []
    for message in messages:
        if len(message.raw) > limit:  # RFC822.SIZE understated it: still not stored
            too_large.append((message.uid, len(message.raw)))
        else:
            within.append(message)
    in_worker = [pool is not None and len(m.raw) <= IN_PROCESS_ABOVE_BYTES for m in within]
    sent = [m.raw for m, there in zip(within, in_worker, strict=True) if there]
    job = pool.submit(sent) if pool is not None and sent else None
    return PendingBatch(within, too_large, len(messages), job, in_worker)


def wants_process(batches: Sequence[Batch], min_messages: int | None) -> bool:
    """Return True when a folder sync of ``batches`` should parse in a worker process: more
    than one batch and at least ``min_messages`` messages to fetch (None: never)."""
    if min_messages is None or len(batches) < 2:
        return False
    return sum(len(b.fetch) for b in batches) >= min_messages
