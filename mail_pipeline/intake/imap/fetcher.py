"""Fetch new mail from one user's IMAP mailbox into the store.

:class:`MailboxFetcher` is the core the Dagster op and ``mail-pipeline imap fetch`` call; it has
no Dagster imports. For one user it logs in (:mod:`~mail_pipeline.intake.imap.connection`) and,
for each configured folder, finds the new UIDs above the folder's cursor and plans their
batches (:mod:`~mail_pipeline.intake.imap.sync`), fetches each batch, stores it with the
folder's new cursor in ONE transaction (:mod:`~mail_pipeline.intake.imap.commit`), and only
after that commit runs the configured post-action on the batch's stored UIDs
(:mod:`~mail_pipeline.intake.imap.post_actions`). Without a post-action the next batch is
fetched while this one is parsed and committed.

Mailbox problems (login refused, server unreachable, TLS refused, connection dropped, a
folder that cannot be selected, a bad config) never raise: they come back as
:attr:`~mail_pipeline.intake.imap.results.MailboxResult.error_kind` with a message that never
holds the password or token. A message that cannot be stored, whatever the error, harms only
itself: its UID and reason go into the sync state and the cursor moves past it. Only a fault
of the environment raises — a store outage (``SQLAlchemyError``) or an attachment root that
cannot take files (:class:`~mail_pipeline.errors.StorageUnavailable`: full, read-only) — and
then the batch in hand is not committed and its cursor stays, so the next run fetches it
again; whatever was committed before stays committed, with its cursor.

Known limits, by design:

- A post-action is at most once (a crash between a batch's commit and its post-action leaves
  the stored messages on the server untouched; never deleted before being stored).
- A first sync interrupted by a crash continues as an ordinary incremental sync from its last
  committed batch, so it may also take older messages above that UID that the first-sync
  filters would have skipped (nothing is lost; duplicates are impossible).

Fault injection: the ``checkpoint`` given to :class:`MailboxFetcher` is called with
``"after_batch:N"`` after the N-th batch of a run is committed (and its post-action run);
in production it is :func:`~mail_pipeline.platform.faults.no_checkpoint`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime

from mail_pipeline.errors import (
    ConfigError,
    EnvironmentFault,
    ImapError,
    ImapProtocolError,
    ImapTimeoutError,
    NotFoundError,
)
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.connection import imap_session
from mail_pipeline.intake.imap.folder import FolderSync, MailboxRun
from mail_pipeline.intake.imap.parse_stage import DEFAULT_PROCESS_MIN_MESSAGES
from mail_pipeline.intake.imap.results import ErrorKind, MailboxResult, error_kind_of
from mail_pipeline.platform.faults import Checkpoint, no_checkpoint
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import MailStore, TaskCounters

__all__ = ["DEFAULT_BATCH_MAX_BYTES", "MailboxFetcher"]

log = logging.getLogger(__name__)

#: How many failed-UID lines one fetch writes into a task's execution log (the rest are
#: counted in one summary line; every one is on the result and in the sync state).
_MAX_LOGGED_FAILURES = 20

#: Default bound of one batch's bytes (by RFC822.SIZE). With prefetching, two batches are in
#: memory at once, each also parsed; three when a large sync parses in the worker process.
DEFAULT_BATCH_MAX_BYTES = 32 * 1024 * 1024


class MailboxFetcher:
    """Fetches new mail of one user's IMAP mailbox into the store (see the module docstring)."""

    def __init__(
        self,
        store: MailStore,
        save_service: EmailSaveService,
        configs: EmailConfigManager,
        *,
        batch_size: int = 100,
        batch_max_bytes: int = DEFAULT_BATCH_MAX_BYTES,
        connect_timeout: float = 15.0,
        read_timeout: float = 60.0,
        clock: Callable[[], datetime] | None = None,
        checkpoint: Checkpoint = no_checkpoint,
        parse_process_min_messages: int | None = DEFAULT_PROCESS_MIN_MESSAGES,
    ) -> None:
        """``checkpoint`` is called with ``"after_batch:N"`` after each committed batch; a
        folder with at least ``parse_process_min_messages`` new messages (None: never) is
        parsed in this process's shared parse worker
        (:func:`~mail_pipeline.mime.parse_pool.shared_parse_pool`).

        Raises:
            ValueError: a ``batch_size`` or ``batch_max_bytes`` < 1 or a timeout that is not
                positive.
        """
        for name, count in (("batch_size", batch_size), ("batch_max_bytes", batch_max_bytes)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"{name} must be a positive integer, got {count!r}")
        for name, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        self.store = store
        self.save_service = save_service
        self.configs = configs
        self.batch_size = batch_size
        self.batch_max_bytes = batch_max_bytes
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        #: new messages from which a folder sync parses in the worker process (None: never)
        self.parse_process_min_messages = parse_process_min_messages
        self._clock = clock or (lambda: datetime.now(UTC))
        self._folders = FolderSync(
            store,
            save_service,
            batch_size=batch_size,
            batch_max_bytes=batch_max_bytes,
            checkpoint=checkpoint,
            parse_process_min_messages=parse_process_min_messages,
        )

    # --- public ----------------------------------------------------------------------------

    def fetch_user(
        self,
        user: int | str,
        *,
        task_id: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> MailboxResult:
        """Fetch the new mail of ``user`` (id or user name) from every configured folder.

        ``progress(done, total)`` is called after each folder's SEARCH (``total`` grows by the
        folder's new UIDs) and after each stored batch. With ``task_id``, the counters are
        added to that EmailTask batch by batch and the outcome is appended to its execution
        log. After a fetch without error, the user's ``last_email_fetch_time`` is updated.

        Returns:
            The :class:`MailboxResult`; mailbox-level problems (an unknown user, a missing or
            invalid config, an undecryptable secret, a refused login, an unreachable server,
            TLS, a dropped connection, a folder the server refuses) are reported in it.

        Raises:
            SQLAlchemyError: the store is unreachable (what was committed stays committed).
            StorageUnavailable: the attachment root cannot take files; the batch in hand was
                not committed and its cursor stays (the reason is also written into the
                task's execution log).
            NotFoundError: ``task_id`` names no task.
        """
        started = time.monotonic()
        user_id = user if isinstance(user, int) else 0
        username = str(user)
        try:
            record = self.store.users.get(user)
            user_id, username = record.id, record.username
            config = self.configs.imap_fetch_config(
                user_id, connect_timeout=self.connect_timeout, read_timeout=self.read_timeout
            )
        except (ConfigError, NotFoundError) as exc:
            result = MailboxResult(
                user_id,
                username,
                ErrorKind.CONFIG,
                str(exc),
                (),
                TaskCounters(),
                time.monotonic() - started,
                (),
            )
            self._log_result(task_id, result)
            return result

        run: MailboxRun | None = None
        error_kind, error, timed_out = ErrorKind.NONE, "", False
        try:
            with imap_session(config.account) as client:
                run = MailboxRun(
                    user_id, username, config, client, task_id, progress, self._clock()
                )
                for folder in config.filters.folders:
                    try:
                        self._folders.sync(run, folder)
                    except ImapProtocolError as exc:  # this folder only; go on with the next
                        error_kind, error = ErrorKind.PROTOCOL, str(exc)
                        log.warning("%s: folder %r: %s", username, folder, exc)
        except (ImapError, ConfigError) as exc:
            error_kind, error = error_kind_of(exc), str(exc)
            timed_out = isinstance(exc, ImapTimeoutError)
        except EnvironmentFault as exc:  # not the mailbox's fault: the run must fail, retry
            log.error("%s: fetch stopped, nothing more can be stored: %s", username, exc)
            if task_id is not None:
                with suppress(Exception):
                    self.store.tasks.add_execution_log(
                        task_id,
                        f"imap_fetch:{username}",
                        f"stopped, the cursor stays: {type(exc).__name__}: {exc}",
                        "ERROR",
                    )
            raise

        if error_kind is ErrorKind.NONE and run is not None and run.counters.fetched:
            # The seed's last_email_fetch_time marks the last fetch that brought mail; an idle
            # tick writes nothing here (per-mailbox success times are the breaker's).
            self.configs.update_fetch_time(user_id, self._clock())
        result = MailboxResult(
            user_id=user_id,
            username=username,
            error_kind=error_kind,
            error=error,
            folders=tuple(run.folders) if run else (),
            counters=run.counters if run else TaskCounters(),
            seconds=time.monotonic() - started,
            failed_uids=tuple(run.failed) if run else (),
            warnings=tuple(run.warnings) if run else (),
            too_large=run.too_large if run else 0,
            timed_out=timed_out,
        )
        self._log_result(task_id, result)
        return result

    # --- bookkeeping -----------------------------------------------------------------------

    def _log_result(self, task_id: str | None, result: MailboxResult) -> None:
        """Append the result to the task's execution log (counters were added per batch)."""
        if result.ok:
            log.info("%s", result.summary())
        else:
            log.warning("%s", result.summary())
        if task_id is None:
            return
        if (
            result.ok
            and not result.counters.fetched
            and not result.warnings
            and not result.failed_uids
        ):
            return  # nothing new: counters say so, the log keeps what happened
        tasks = self.store.tasks
        step = f"imap_fetch:{result.username}"
        tasks.add_execution_log(task_id, step, result.summary(), "INFO" if result.ok else "ERROR")
        for folder, uid, reason in result.failed_uids[:_MAX_LOGGED_FAILURES]:
            tasks.add_execution_log(
                task_id, step, f"folder {folder!r} UID {uid}: {reason}", "WARNING"
            )
        if len(result.failed_uids) > _MAX_LOGGED_FAILURES:
            tasks.add_execution_log(
                task_id,
                step,
                f"... and {len(result.failed_uids) - _MAX_LOGGED_FAILURES} more failed UIDs",
                "WARNING",
            )
        for warning in result.warnings:
            tasks.add_execution_log(task_id, step, warning, "WARNING")
