"""One folder's sync in a mailbox fetch: cursor, batches, commit, post-action.

:class:`FolderSync` takes a folder of the mailbox a :class:`MailboxRun` is logged in to through
the steps of :mod:`~mail_pipeline.intake.imap.sync` (EXAMINE, SEARCH above the cursor, sizes,
batches), commits each fetched batch with the folder's new cursor
(:mod:`~mail_pipeline.intake.imap.commit`) and only then runs the post-action on its stored
UIDs (:mod:`~mail_pipeline.intake.imap.post_actions`). Without a post-action the connection is
only used to FETCH, so the next batch is fetched in a worker thread while this one is parsed
and committed; a large sync also parses in a worker process
(:mod:`~mail_pipeline.intake.imap.parse_stage`), one batch ahead of the commit. After each
committed batch the checkpoint is called with ``"after_batch:N"``
(N counts the batches of the whole run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime

import imapclient

from mail_pipeline.intake.imap.account import PostAction
from mail_pipeline.intake.imap.commit import BatchOutcome, FolderTarget, commit_batch
from mail_pipeline.intake.imap.config import ImapFetchConfig
from mail_pipeline.intake.imap.parse_stage import (
    DEFAULT_PROCESS_MIN_MESSAGES,
    PendingBatch,
    parse_batch,
    wants_process,
)
from mail_pipeline.intake.imap.post_actions import FolderPostActions
from mail_pipeline.intake.imap.results import FolderResult
from mail_pipeline.intake.imap.sync import (
    Batch,
    cursor_of,
    examine,
    fetch_batch,
    plan_folder,
    search_new,
)
from mail_pipeline.intake.imap.translate import translate_imap_errors
from mail_pipeline.intake.imap.wire import RawMessage
from mail_pipeline.mime.parse_pool import ParsePool, shared_parse_pool
from mail_pipeline.platform.faults import Checkpoint
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import MailStore, SyncUpdate, TaskCounters

__all__ = ["FolderSync", "MailboxRun"]

log = logging.getLogger(__name__)


@dataclass
class _FolderState:
    """The counters of one folder's sync so far."""

    folder: str
    uidvalidity: int = 0
    fetched: int = 0
    saved: int = 0
    duplicates: int = 0
    failed: int = 0
    last_uid: int = 0
    reset: bool = False
    too_large: int = 0

    def add(self, outcome: BatchOutcome, last: int) -> None:
        """Count a committed batch whose cursor is ``last``."""
        self.fetched += outcome.counters.fetched
        self.saved += outcome.counters.saved
        self.duplicates += outcome.counters.duplicate
        self.failed += outcome.counters.failed
        self.too_large += outcome.too_large
        self.last_uid = last

    def result(self) -> FolderResult:
        """The folder's :class:`FolderResult` so far."""
        return FolderResult(
            self.folder,
            self.uidvalidity,
            self.fetched,
            self.saved,
            self.duplicates,
            self.failed,
            self.last_uid,
            self.reset,
            self.too_large,
        )


@dataclass
class MailboxRun:
    """The mutable state of one mailbox fetch (one
    :meth:`~mail_pipeline.intake.imap.fetcher.MailboxFetcher.fetch_user` call)."""

    user_id: int
    username: str
    config: ImapFetchConfig
    client: imapclient.IMAPClient
    task_id: str | None
    progress: Callable[[int, int], None] | None
    now: datetime
    folders: list[FolderResult] = field(default_factory=list)
    counters: TaskCounters = field(default_factory=TaskCounters)
    failed: list[tuple[str, int, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    total: int = 0
    done: int = 0
    batches: int = 0
    too_large: int = 0

    @contextmanager
    def imap(self, action: str) -> Iterator[None]:
        """Translate IMAP errors of the block, redacting this account's secrets."""
        account = self.config.account
        with translate_imap_errors(
            f"{action} ({account.endpoint})",
            secrets=(account.password, account.oauth2_token),
        ):
            yield

    def report(self) -> None:
        """Call ``progress(done, total)`` if given."""
        if self.progress is not None:
            self.progress(self.done, self.total)


class FolderSync:
    """Syncs folders of a mailbox fetch into the store (see the module docstring)."""

    def __init__(
        self,
        store: MailStore,
        save_service: EmailSaveService,
        *,
        batch_size: int,
        batch_max_bytes: int,
        checkpoint: Checkpoint,
        parse_process_min_messages: int | None = DEFAULT_PROCESS_MIN_MESSAGES,
        parse_pool: Callable[[], ParsePool] = shared_parse_pool,
    ) -> None:
        """Store through ``save_service``; batches of at most ``batch_size`` UIDs and
        ``batch_max_bytes`` bytes; ``checkpoint`` is called after each committed batch. A
        folder sync with at least ``parse_process_min_messages`` messages to fetch (None:
        never) parses in the worker process of ``parse_pool()``."""
        self.parse_process_min_messages = parse_process_min_messages
        self.parse_pool = parse_pool
        self.store = store
        self.save_service = save_service
        self.batch_size = batch_size
        self.batch_max_bytes = batch_max_bytes
        self.checkpoint = checkpoint

    def sync(self, run: MailboxRun, folder: str) -> None:
        """Sync ``folder`` of ``run``'s mailbox; its result is added to ``run.folders`` once
        it has been examined, whatever happens next.

        Raises:
            ImapProtocolError: the server refused the folder or a command on it.
            ImapConnectError: the connection failed.
            SQLAlchemyError, StorageUnavailable: an environment fault (the batch in hand is
                not committed and its cursor stays).
        """
        state = _FolderState(folder)
        try:
            self._sync_into(run, state)
        finally:
            if state.uidvalidity:
                run.folders.append(state.result())

    def _sync_into(self, run: MailboxRun, state: _FolderState) -> None:
        folder, client, config = state.folder, run.client, run.config
        examined = examine(client, run.imap, folder)
        state.uidvalidity = uidvalidity = examined.uidvalidity
        cursor = cursor_of(self.store.messages.sync_position(run.user_id, folder), uidvalidity)
        state.reset = cursor.reset
        uids = search_new(client, run.imap, folder, cursor, config.filters, run.now.date())
        floor = cursor.floor(examined.uidnext)
        state.last_uid = cursor.last_uid
        run.total += len(uids)
        run.report()
        log.debug(
            "%s: folder %r: %d new (cursor %d, uidvalidity %d, first sync %s)",
            run.username,
            folder,
            len(uids),
            cursor.last_uid,
            uidvalidity,
            not cursor.incremental,
        )

        if not uids:
            if not cursor.incremental:  # a first sync or a new UIDVALIDITY: store where it is
                self.store.messages.update_sync(
                    SyncUpdate(run.user_id, folder, uidvalidity, floor, run.now)
                )
            # An incremental folder with nothing new keeps its position: writing it again
            # would cost a write transaction per idle mailbox per tick (the mailbox's last
            # successful check is recorded in its mailbox state).
            state.last_uid = floor
            return

        batches = plan_folder(
            client,
            run.imap,
            folder,
            uids,
            limit=config.max_message_bytes,
            batch_size=self.batch_size,
            batch_max_bytes=self.batch_max_bytes,
        )
        target = FolderTarget(run.user_id, run.username, folder, uidvalidity, run.now)
        actions = FolderPostActions(
            client,
            run.imap,
            action=config.post_action,
            move_to=config.move_to,
            folder=folder,
            uidvalidity=uidvalidity,
            username=run.username,
        )
        # Without a post-action the connection is only used to FETCH, so the next batch is
        # fetched in a worker thread while this one is parsed and committed (the socket
        # reads and TLS release the GIL). With a post-action, commands must stay in order.
        prefetch = config.post_action is PostAction.NONE and len(batches) > 1

        # A large sync parses in a worker process, one batch behind the fetch and one ahead
        # of the commit: batch N parses while batch N-1 is saved and N+1 fetched. A small one
        # parses each batch in this thread when it is committed (no process start).
        pool = (
            self.parse_pool() if wants_process(batches, self.parse_process_min_messages) else None
        )
        limit = config.max_message_bytes
        held: tuple[int, Batch, PendingBatch] | None = None

        def fetch(chunk: Batch) -> list[RawMessage]:
            return fetch_batch(client, run.imap, folder, chunk)

        def commit(index: int, chunk: Batch, parsing: PendingBatch) -> None:
            last = chunk.uids[-1] if index + 1 < len(batches) else max(chunk.uids[-1], floor)
            outcome = commit_batch(
                self.save_service,
                self.store,
                target,
                chunk,
                parsing.result(),
                last=last,
                limit=limit,
            )
            self._count(run, state, chunk, outcome, last)
            if outcome.stored and config.post_action is not PostAction.NONE:
                warning = actions.apply(outcome.stored)
                if warning is not None:
                    run.warnings.append(warning)
            run.batches += 1
            self.checkpoint(f"after_batch:{run.batches}")
            run.report()

        with (
            ThreadPoolExecutor(1, thread_name_prefix="imap-fetch")
            if prefetch
            else (nullcontext()) as fetcher
        ):
            pending = fetcher.submit(fetch, batches[0]) if fetcher else None
            for index, chunk in enumerate(batches):
                try:
                    if pending is not None:
                        messages = pending.result()
                        pending = (
                            fetcher.submit(fetch, batches[index + 1])
                            if fetcher is not None and index + 1 < len(batches)
                            else None
                        )
                    else:
                        messages = fetch(chunk)
                except Exception:
                    if held is not None:  # what was fetched before the failure is still stored
                        commit(*held)
                    raise
                parsing = parse_batch(messages, limit=limit, pool=pool)
                if pool is None:
                    commit(index, chunk, parsing)
                    continue
                if held is not None:
                    commit(*held)
                held = (index, chunk, parsing)
            if held is not None:
                commit(*held)

    def _count(
        self, run: MailboxRun, state: _FolderState, chunk: Batch, outcome: BatchOutcome, last: int
    ) -> None:
        """Add a committed batch to the run, the folder and the task's counters."""
        run.counters += outcome.counters
        state.add(outcome, last)
        run.too_large += outcome.too_large
        run.failed += [(state.folder, uid, reason) for uid, reason in outcome.failed]
        run.done += len(chunk.uids)
        if run.task_id is not None:
            self.store.tasks.add_counters(run.task_id, outcome.counters)
