"""The IMAP mailbox fetcher against a real Dovecot, with the store on SQLite and PostgreSQL:
arguments, folders, per-account limits, and mailbox-level failures that harm only their
mailbox (seed fault: swallowed login errors, ``test_wrong_password_fails_only_that_user``).

The steps have their own tests: ``test_sync.py`` (cursor, SEARCH, batches), ``test_commit.py``
(storing a batch), ``test_post_actions.py``, ``test_folder.py``; the kill -9 test is in
``test_fetcher_crash.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.fetcher import MailboxFetcher
from mail_pipeline.intake.imap.results import ErrorKind
from mail_pipeline.intake.limits import DEFAULT_MAX_MESSAGE_BYTES
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import EmailSource, MailStore, TaskStatus
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.intake.imap.mailboxes import (
    LIMIT,
    Mailbox,
    assert_ok,
    big_message,
    message,
    stored_subjects,
)

pytestmark = pytest.mark.dovecot


def test_constructor_checks_arguments(
    store: MailStore, configs: EmailConfigManager, attachment_root: Path
) -> None:
    save = EmailSaveService(store, AttachmentStorage(attachment_root))
    for bad in (
        {"batch_size": 0},
        {"batch_size": True},
        {"read_timeout": 0},
        {"batch_max_bytes": 0},
    ):
        with pytest.raises(ValueError):
            MailboxFetcher(store, save, configs, **bad)


def test_two_folders_and_the_same_message_in_both_is_stored_once(
    fetcher: MailboxFetcher,
    mailbox: Callable[..., Mailbox],
    store: MailStore,
    dovecot: DovecotServer,
) -> None:
    box = mailbox(folders=("INBOX", "Work"))
    dovecot.create_folder(box.name, "Work")
    for n in range(4):
        box.append(message(n, subject=f"inbox {n}"))
    for n in range(2):
        box.append(message(n, subject=f"work {n}"), folder="Work")
    shared = message(99, subject="in both", message_id="<shared@example.net>")
    box.append(shared)
    box.append(shared, folder="Work")

    result = fetcher.fetch_user(box.id)

    assert_ok(result)
    assert [f.folder for f in result.folders] == ["INBOX", "Work"]
    assert [f.fetched for f in result.folders] == [5, 3]
    assert result.counters.saved == 7 and result.counters.duplicate == 1
    assert stored_subjects(store, box.id).count("in both") == 1
    assert {p.folder for p in store.messages.sync_positions(box.id)} == {"INBOX", "Work"}


def test_the_limit_is_per_account_and_defaults_to_the_spools(
    fetcher: MailboxFetcher,
    mailbox: Callable[..., Mailbox],
    store: MailStore,
    configs: EmailConfigManager,
) -> None:
    from mail_pipeline.intake.spool.ingest import DEFAULT_MAX_SIZE

    strict = mailbox(max_message_bytes=LIMIT)
    roomy = mailbox(max_message_bytes=400 * 1024)
    default = mailbox()
    assert configs.imap_fetch_config(default.id).max_message_bytes == DEFAULT_MAX_SIZE
    assert DEFAULT_MAX_MESSAGE_BYTES == DEFAULT_MAX_SIZE == 25 * 1024 * 1024
    for box in (strict, roomy, default):
        box.append(big_message(1))

    results = [fetcher.fetch_user(box.id) for box in (strict, roomy, default)]

    assert [r.too_large for r in results] == [1, 0, 0]
    assert [store.messages.count(box.id) for box in (strict, roomy, default)] == [0, 1, 1]


def test_wrong_password_fails_only_that_user(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore
) -> None:
    boxes = [mailbox() for _ in range(3)]
    for box in boxes:
        box.append(message(1))
    wrong = "Wr0ng-Secret-Pa55word"
    boxes[1].configure(fetcher.configs, password=wrong)
    task = store.tasks.create(EmailSource.IMAP, status=TaskStatus.RUNNING)

    results = [fetcher.fetch_user(b.id, task_id=task.task_id) for b in boxes]

    assert [r.ok for r in results] == [True, False, True]
    failed = results[1]
    assert failed.error_kind is ErrorKind.AUTH and not failed.transient
    assert wrong not in failed.error and boxes[1].name in failed.error
    assert [store.messages.count(b.id) for b in boxes] == [1, 0, 1]
    snapshot = store.tasks.get(task.task_id)
    assert snapshot.counters.saved == 2
    errors = [e for e in snapshot.log if e["level"] == "ERROR"]
    assert len(errors) == 1 and boxes[1].name in errors[0]["message"]
    assert wrong not in str(snapshot.details)


def test_tls_with_a_wrong_ca_is_refused(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], dovecot: DovecotServer
) -> None:
    box = mailbox(ca_file=str(dovecot.wrong_ca_cert_path))
    result = fetcher.fetch_user(box.id)
    assert result.error_kind is ErrorKind.TLS and not result.transient
    assert "certificate" in result.error


def test_unreachable_server_and_missing_config(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    box = mailbox(port=closed_port)
    result = fetcher.fetch_user(box.id)
    assert result.error_kind is ErrorKind.CONNECT and result.transient
    nobody = store.users.add("no-config", "no-config@example.org")
    result = fetcher.fetch_user(nobody.id)
    assert result.error_kind is ErrorKind.CONFIG and not result.transient
    assert fetcher.fetch_user("nobody-at-all").error_kind is ErrorKind.CONFIG


def test_a_missing_folder_fails_only_that_folder(
    fetcher: MailboxFetcher, mailbox: Callable[..., Mailbox], store: MailStore
) -> None:
    box = mailbox(folders=("Missing", "INBOX"))
    box.append(message(1))
    result = fetcher.fetch_user(box.id)
    assert result.error_kind is ErrorKind.PROTOCOL and "Missing" in result.error
    assert [f.folder for f in result.folders] == ["INBOX"]
    assert store.messages.count(box.id) == 1
