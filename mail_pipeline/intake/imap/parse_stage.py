"""The parse step of a folder sync: a fetched batch's messages parsed here or in a worker.

:func:`parse_batch` sets aside the messages over the account's limit (their RFC822.SIZE
understated them) and parses the others, either in this thread when the result is asked for
(``pool`` None: exactly when the batch is committed, as a small sync always does) or at once in
a worker process of a :class:`~mail_pipeline.mime.parse_pool.ParsePool`, so that a large
folder sync parses batch N while batch N-1 is saved and batch N+1 is fetched. Both give the
same outcomes; a worker that dies has its messages parsed again in this process.

:func:`wants_process` is the rule for when the process is worth it: a folder sync with at
least ``min_messages`` messages to fetch over more than one batch (an idle or nearly idle
mailbox never starts a worker).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mail_pipeline.intake.imap.sync import Batch
from mail_pipeline.intake.imap.wire import RawMessage
from mail_pipeline.mime.parse_pool import ParseJob, ParseOutcome, ParsePool, parse_outcomes

__all__ = [
    "DEFAULT_PROCESS_MIN_MESSAGES",
    "ParsedBatch",
    "PendingBatch",
    "parse_batch",
    "wants_process",
]

#: Messages to fetch from which a folder sync parses in a worker process. Starting the worker
#: costs ≈0.5 s of CPU once per process (interpreter and parser imports); parsing costs
#: ≈0.7-1 ms per 20 KB message, so below a few hundred messages the overlap does not pay.
DEFAULT_PROCESS_MIN_MESSAGES = 300


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
    """A batch being parsed; :meth:`result` waits for (or, in-process, does) the parse."""

    def __init__(
        self,
        within: list[RawMessage],
        too_large: list[tuple[int, int]],
        fetched: int,
        job: ParseJob | None,
    ) -> None:
        self._within = within
        self._too_large = too_large
        self._fetched = fetched
        self._job = job

    def result(self) -> ParsedBatch:
        """Return the :class:`ParsedBatch` (parsing in this thread when no worker has it)."""
        raws = [m.raw for m in self._within]
        outcomes = self._job.result() if self._job is not None else parse_outcomes(raws)
        return ParsedBatch(
            list(zip(self._within, outcomes, strict=True)), self._too_large, self._fetched
        )


def parse_batch(
    messages: Sequence[RawMessage], *, limit: int, pool: ParsePool | None
) -> PendingBatch:
    """Set aside the ``messages`` over ``limit`` bytes and start parsing the others: in a
    worker of ``pool`` now, or in this thread at :meth:`PendingBatch.result` (``pool`` None).

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
    job = pool.submit([m.raw for m in within]) if pool is not None and within else None
    return PendingBatch(within, too_large, len(messages), job)


def wants_process(batches: Sequence[Batch], min_messages: int | None) -> bool:
    """Return True when a folder sync of ``batches`` should parse in a worker process: more
    than one batch and at least ``min_messages`` messages to fetch (None: never)."""
    if min_messages is None or len(batches) < 2:
        return False
    return sum(len(b.fetch) for b in batches) >= min_messages
