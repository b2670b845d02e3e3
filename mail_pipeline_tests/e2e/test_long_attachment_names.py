"""Attachments with long non-ASCII names are stored end to end, over the spool and over IMAP.

File systems limit a name to 255 bytes, not characters: 80 CJK characters or 300 × ``é`` used
to pass the 150-character cap of the safe name and then fail the write with ``[Errno 36] File
name too long``, sending the whole message (with its other attachments) to ``failed/``, and
over IMAP skipping its UID for good. Each test writes real files under the attachment root on
the real file system, with the store on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.fetcher import MailboxFetcher
from mail_pipeline.intake.spool.ingest import SpoolIngestService
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.fixtures.spool_files import all_files, write_pair

NAME_MAX = 255  # bytes per file name on ext4, XFS, btrfs, ZFS, APFS

# name -> content; every name is longer than 255 bytes on disk with the old 150-character cap
LONG_NAMES = {
    "季度销售报告与分析" * 9 + ".xlsx": b"cjk spreadsheet",  # 81 CJK characters + extension
    "é" * 300: b"three hundred e-acute",
    "Отчёт о продажах за квартал " * 10 + ".docx": b"cyrillic report",
    "😀" * 75: b"seventy-five emoji, 300 bytes",
    "short.txt": b"an ordinary attachment beside them",
}


def long_name_message(message_id: str) -> bytes:
    """A message with one attachment of each name of :data:`LONG_NAMES` (RFC 2231 names)."""
    msg = EmailMessage()
    msg["From"] = "Bob <bob@example.net>"
    msg["To"] = "alice@example.org"
    msg["Subject"] = "long attachment names"
    msg["Message-ID"] = message_id
    msg["Date"] = "Tue, 01 Sep 2026 10:00:00 +0200"
    msg.set_content("See the attachments.\n")
    for name, content in LONG_NAMES.items():
        msg.add_attachment(content, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes(policy=SMTP)


def assert_stored_with_every_attachment(store: MailStore, user_id: int, root: Path) -> None:
    """One message for the user, every attachment on disk, full names in the database."""
    (summary,) = store.messages.summaries(user_id)
    attachments = store.messages.get_content(summary.id)["attachments"]
    by_name = {a["filename"]: a for a in attachments}
    assert sorted(by_name) == sorted(LONG_NAMES)  # the full decoded names, not the cut ones
    for name, content in LONG_NAMES.items():
        row = by_name[name]
        path = root / row["file_path"]
        assert path.is_file() and path.read_bytes() == content
        assert row["sha256"] == hashlib.sha256(content).hexdigest()
        assert len(path.name.encode()) <= NAME_MAX
        assert path.name.endswith(f"_{row['safe_filename']}")
        if name.endswith((".xlsx", ".docx", ".txt")):
            assert row["safe_filename"].rsplit(".", 1)[1] == name.rsplit(".", 1)[1]


def test_spool_ingest_stores_long_non_ascii_attachment_names(
    store: MailStore, tmp_path: Path, attachment_root: Path
) -> None:
    alice = store.users.add("alice", "alice@example.org").id
    spool = tmp_path / "spool"
    sid = write_pair(
        spool, long_name_message("<long-names-spool@example.net>"), ["alice@example.org"]
    )

    result = SpoolIngestService(store, spool, attachment_root, fsync=True).ingest()

    assert (result.saved, result.failed) == (1, 0)
    files = all_files(spool)
    assert files["failed"] == [] and files["inbox"] == []
    assert files["processed"] == [f"{sid}.eml", f"{sid}.meta"]
    assert_stored_with_every_attachment(store, alice, attachment_root)


@pytest.mark.dovecot
def test_imap_fetch_stores_long_non_ascii_attachment_names(
    store: MailStore, dovecot: DovecotServer, attachment_root: Path
) -> None:
    mail_user = dovecot.new_user()
    user_id = store.users.add(mail_user.username, f"{mail_user.username}@example.org").id
    configs = EmailConfigManager(store, "a passphrase for the long attachment name tests")
    configs.update_fetch_config(
        user_id,
        {
            "imap_config": {
                "imap_host": dovecot.host,
                "imap_ssl_port": dovecot.imaps_port,
                "security": "ssl",
                "username": mail_user.username,
                "password": mail_user.password,
                "ca_file": str(dovecot.ca_cert_path),
                "post_action": "none",
            },
            "filter_config": {"folders": ["INBOX"], "max_age_days": 7, "filters": []},
        },
    )
    uid = dovecot.append(
        mail_user.username, long_name_message(f"<long-names-{uuid.uuid4().hex}@example.net>")
    )
    save = EmailSaveService(store, AttachmentStorage(attachment_root, fsync=True))
    fetcher = MailboxFetcher(store, save, configs, connect_timeout=5, read_timeout=10)

    result = fetcher.fetch_user(user_id)

    assert result.ok, result.error
    assert (result.counters.saved, result.counters.failed, result.failed_uids) == (1, 0, ())
    position = store.messages.sync_position(user_id, "INBOX")
    assert position is not None and position.last_uid == uid and position.failed_uids == []
    assert_stored_with_every_attachment(store, user_id, attachment_root)
    assert sorted(os.listdir(attachment_root)) == [str(user_id)]
