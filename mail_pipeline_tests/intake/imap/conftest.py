"""Fixtures of the IMAP tests: the config manager, a fetcher, Dovecot mailboxes, spies."""

from __future__ import annotations

import imaplib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mail_pipeline.intake.imap import sync
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.fetcher import MailboxFetcher
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.intake.imap.mailboxes import SECRET, CommandLog, Mailbox


@pytest.fixture
def configs(store: MailStore) -> EmailConfigManager:
    return EmailConfigManager(store, SECRET)


@pytest.fixture
def fetcher(store: MailStore, configs: EmailConfigManager, attachment_root: Path) -> MailboxFetcher:
    save = EmailSaveService(store, AttachmentStorage(attachment_root, fsync=False))
    return MailboxFetcher(store, save, configs, batch_size=3, connect_timeout=5, read_timeout=10)


@pytest.fixture
def mailbox(
    dovecot: DovecotServer, store: MailStore, configs: EmailConfigManager
) -> Callable[..., Mailbox]:
    def make(**options: Any) -> Mailbox:
        return Mailbox(dovecot, store, configs, dovecot.new_user(), **options)

    return make


@pytest.fixture
def command_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[CommandLog]:
    record = CommandLog()
    original = imaplib.IMAP4.send

    def send(self: imaplib.IMAP4, data: bytes) -> None:
        words = bytes(data).split(b" ", 3)
        tag: bytes | str = self.tagpre  # bytes at run time, str in typeshed
        prefix = tag.encode() if isinstance(tag, str) else tag
        if len(words) >= 2 and words[0].startswith(prefix):
            name = words[1].upper()
            if name == b"UID" and len(words) >= 3:
                name += b" " + words[2].upper()
            record.commands.append(name.decode().strip())
        original(self, data)

    monkeypatch.setattr(imaplib.IMAP4, "send", send)
    yield record


@pytest.fixture
def body_fetches(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The UIDs of every body ``UID FETCH`` the fetcher sends."""
    seen: list[list[int]] = []
    original = sync.fetch_bodies

    def spy(client: Any, uids: list[int]) -> list[Any]:
        seen.append(list(uids))
        return original(client, uids)

    monkeypatch.setattr(sync, "fetch_bodies", spy)
    return seen
