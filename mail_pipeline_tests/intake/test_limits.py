"""A message as big as the default limit (25 MiB) is stored intact on both paths, and its
ingest stays within a bounded multiple of its size in memory.

The message is a short text body and one base64 attachment that makes up the rest; it goes
through the Haraka spool and through IMAP (the session's Dovecot), on SQLite and PostgreSQL.
The memory bound is checked in a child process (``big_message_runner``): its peak resident
memory (``VmHWM``) above the resident memory just before the ingest, divided by the message
size. The bounds are generous on purpose (measured: about 3.3x on SQLite, 9.4x on
PostgreSQL, whose driver escapes the raw bytes as hex text; before the parser and the save
path stopped copying the message they were 6.8x and 13-15x); ``bench/big_message.py`` gives the
figures.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.fetcher import MailboxFetcher
from mail_pipeline.intake.limits import DEFAULT_MAX_MESSAGE_BYTES
from mail_pipeline.intake.spool.ingest import SpoolIngestService
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.data.corpus_tools import big_attachment_message
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.fixtures.spool_files import write_pair
from mail_pipeline_tests.intake.imap.mailboxes import SECRET, Mailbox

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Peak resident memory above the baseline, in multiples of the message size, per backend.
MEMORY_BOUND = {"sqlite": 4.5, "postgresql": 11.0}
ADDRESS = "alice@example.org"


@pytest.fixture(scope="module")
def big() -> tuple[bytes, bytes]:
    """(message just under the default limit, its attachment's content)."""
    room = DEFAULT_MAX_MESSAGE_BYTES - 64 * 1024
    # base64 with CRLF takes 78 bytes per 57; the headers and the text part about 1 KB
    raw, content = big_attachment_message((room - 4096) * 57 // 78)
    assert room - 8192 < len(raw) <= room
    return raw, content


def _assert_stored_intact(store: MailStore, root: Path, raw: bytes, content: bytes) -> None:
    (summary,) = store.messages.summaries()
    stored = store.messages.get_content(summary.id)
    assert stored["raw_content"] == raw and summary.size == len(raw)
    (attachment,) = stored["attachments"]
    assert attachment["filename"] == "blob.bin"
    assert attachment["file_size"] == len(content)
    assert attachment["sha256"] == hashlib.sha256(content).hexdigest()
    assert (root / attachment["file_path"]).read_bytes() == content
    assert stored["text_content"].strip() == "See attached."


def test_the_biggest_message_is_stored_intact_from_the_spool(
    store: MailStore, tmp_path: Path, attachment_root: Path, big: tuple[bytes, bytes]
) -> None:
    raw, content = big
    store.users.add("alice", ADDRESS)
    write_pair(tmp_path / "spool", raw, [ADDRESS])
    service = SpoolIngestService(store, tmp_path / "spool", attachment_root, fsync=False)
    result = service.ingest()
    assert (result.found, result.saved, result.failed) == (1, 1, 0)
    _assert_stored_intact(store, attachment_root, raw, content)


def test_the_biggest_message_is_stored_intact_from_imap(
    store: MailStore, dovecot: DovecotServer, attachment_root: Path, big: tuple[bytes, bytes]
) -> None:
    raw, content = big
    configs = EmailConfigManager(store, SECRET)
    box = Mailbox(dovecot, store, configs, dovecot.new_user())
    box.append(raw)
    saver = EmailSaveService(store, AttachmentStorage(attachment_root, fsync=False))
    result = MailboxFetcher(store, saver, configs).fetch_user(box.id)
    assert result.ok, result.error
    assert (result.counters.saved, result.counters.failed) == (1, 0)
    _assert_stored_intact(store, attachment_root, raw, content)


def _peak_ratio(path: str, store_url: str, source: str, root: Path, size: int) -> float:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mail_pipeline_tests.intake.big_message_runner",
            path,
            store_url,
            source,
            str(root),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["saved"] == 1, figures
    return float((figures["peak_kib"] - figures["baseline_kib"]) * 1024 / size)


def test_the_spool_ingest_of_the_biggest_message_has_bounded_memory(
    store: MailStore, store_url: str, tmp_path: Path, big: tuple[bytes, bytes]
) -> None:
    raw, _content = big
    store.users.add("alice", ADDRESS)
    write_pair(tmp_path / "spool", raw, [ADDRESS])
    ratio = _peak_ratio("spool", store_url, str(tmp_path / "spool"), tmp_path / "att", len(raw))
    assert ratio <= MEMORY_BOUND[store.dialect], f"peak {ratio:.2f}x the message"


def test_the_imap_ingest_of_the_biggest_message_has_bounded_memory(
    store: MailStore,
    store_url: str,
    dovecot: DovecotServer,
    tmp_path: Path,
    big: tuple[bytes, bytes],
) -> None:
    raw, _content = big
    box = Mailbox(dovecot, store, EmailConfigManager(store, SECRET), dovecot.new_user())
    box.append(raw)
    ratio = _peak_ratio("imap", store_url, box.name, tmp_path / "att", len(raw))
    assert ratio <= MEMORY_BOUND[store.dialect], f"peak {ratio:.2f}x the message"
