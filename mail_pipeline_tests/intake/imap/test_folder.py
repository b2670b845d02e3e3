"""One folder's sync in a run: the checkpoint after each committed batch, and a server that
stops mid-run (the prefetched batch may be committed, nothing is stored twice).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.fetcher import MailboxFetcher
from mail_pipeline.intake.imap.results import ErrorKind
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.intake.imap.mailboxes import (
    Mailbox,
    assert_ok,
    message,
    stored_subjects,
)

pytestmark = pytest.mark.dovecot


@pytest.mark.parametrize("post_action", ["none", "mark_seen"])  # with and without prefetch
def test_the_checkpoint_is_called_after_each_committed_batch(
    store: MailStore,
    configs: EmailConfigManager,
    attachment_root: Path,
    mailbox: Callable[..., Mailbox],
    post_action: str,
) -> None:
    box = mailbox(post_action=post_action)
    for n in range(7):
        box.append(message(n))
    seen: list[tuple[str, int]] = []

    def checkpoint(point: str) -> None:
        seen.append((point, store.messages.count(box.id)))

    save = EmailSaveService(store, AttachmentStorage(attachment_root, fsync=False))
    fetcher = MailboxFetcher(
        store,
        save,
        configs,
        batch_size=3,
        connect_timeout=5,
        read_timeout=10,
        checkpoint=checkpoint,
    )
    assert_ok(fetcher.fetch_user(box.id))
    # each point is reached with its batch (and every earlier one) committed
    assert seen == [("after_batch:1", 3), ("after_batch:2", 6), ("after_batch:3", 7)]


def test_server_stopped_mid_run_then_the_next_run_completes_without_duplicates(
    private_dovecot: DovecotServer,
    store: MailStore,
    configs: EmailConfigManager,
    attachment_root: Path,
) -> None:
    server = private_dovecot
    boxes = [Mailbox(server, store, configs, server.new_user()) for _ in range(2)]
    for box in boxes:
        for n in range(7):
            box.append(message(n))
    save = EmailSaveService(store, AttachmentStorage(attachment_root, fsync=False))
    fetcher = MailboxFetcher(store, save, configs, batch_size=2, connect_timeout=3, read_timeout=5)
    calls: list[tuple[int, int]] = []

    def stop_after_first_batch(done: int, total: int) -> None:
        calls.append((done, total))
        if done >= 2:
            server.stop()

    first = fetcher.fetch_user(boxes[0].id, progress=stop_after_first_batch)
    second = fetcher.fetch_user(boxes[1].id)

    assert first.error_kind is ErrorKind.CONNECT and first.transient
    assert second.error_kind is ErrorKind.CONNECT
    assert calls[0] == (0, 7)
    # the batch being prefetched when the server stopped may still be committed
    kept = store.messages.count(boxes[0].id)
    assert 2 <= kept < 7 and first.counters.saved == kept
    server.start()
    for box in boxes:
        assert_ok(fetcher.fetch_user(box.id))
        assert store.messages.count(box.id) == 7
        subjects = stored_subjects(store, box.id)
        assert len(set(subjects)) == 7
