"""File retention: expired spool files and old unreferenced attachment files."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mail_pipeline.maintenance.file_retention import cleanup_attachments, cleanup_spool
from mail_pipeline.maintenance.retention_policy import RetentionPolicy
from mail_pipeline.mime import parse_message
from mail_pipeline.storage.attachments import AttachmentStorage
from mail_pipeline.storage.deliveries import Delivery
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import EmailSource, MailStore
from mail_pipeline_tests.fixtures.spool_files import make_raw
from mail_pipeline_tests.maintenance.conftest import aged_file, spool_tree


def test_spool_retention_with_a_dry_run_first(tmp_path: Path) -> None:
    now = time.time()
    root = tmp_path / "spool"
    files = spool_tree(root, now)
    before = sorted(str(p) for p in root.rglob("*"))

    processed, failed, unmatched = cleanup_spool(root, RetentionPolicy(), now=now, dry_run=True)
    assert sorted(str(p) for p in root.rglob("*")) == before  # nothing deleted
    assert processed.files == 2 and failed.files == 3 and unmatched.files == 2

    processed, failed, unmatched = cleanup_spool(root, RetentionPolicy(), now=now)
    gone = {k for k, p in files.items() if not os.path.lexists(p)}
    assert gone == {
        "processed_old_eml",
        "processed_old_meta",
        "f-old.eml",
        "f-old.meta",
        "f-old.error.json",
        "u-old.eml",
        "u-old.meta",
    }
    assert processed.bytes == 20 and failed.files == 3 and unmatched.files == 2
    assert not (root / "processed" / "2026-11-01").exists()  # the emptied old day went
    assert (root / "processed" / "2026-11-17").is_dir()
    assert (root / "failed" / "link.eml").is_symlink() and files["outside"].exists()


def test_spool_retention_is_configurable_and_a_missing_spool_is_empty(tmp_path: Path) -> None:
    now = time.time()
    root = tmp_path / "spool"
    spool_tree(root, now)
    policy = RetentionPolicy(processed_days=1, failed_spool_days=None, unmatched_days=None)
    processed, failed, unmatched = cleanup_spool(root, policy, now=now)
    assert processed.files == 4 and failed.files == 0 and unmatched.files == 0
    assert cleanup_spool(tmp_path / "nowhere", RetentionPolicy())[0].files == 0


def _save_with_attachment(store: MailStore, root: Path) -> str:
    user = store.users.add("att", "att@example.org")
    raw = make_raw(1, to="att@example.org", attachment=b"%PDF-1.4 report")
    service = EmailSaveService(store, AttachmentStorage(root, fsync=False))
    service.save_batch(
        [Delivery(user.id, parse_message(raw), source=EmailSource.HARAKA, origin="spool:x")]
    )
    (path,) = store.messages.attachment_paths()
    return path


def test_unreferenced_old_attachments_go_young_and_referenced_stay(
    store: MailStore,
    attachment_root: Path,
) -> None:
    now = time.time()
    kept = _save_with_attachment(store, attachment_root)
    storage = AttachmentStorage(attachment_root)
    aged_file(storage.root / kept, 30, now)  # old but referenced
    orphan = aged_file(storage.root / "1" / "ab" / "abcd" / "orphan.pdf", 2, now)
    in_flight = aged_file(storage.root / "1" / "cd" / "cdef" / "inflight.pdf", 0.01, now)

    dry = cleanup_attachments(store, attachment_root, RetentionPolicy(), now=now, dry_run=True)
    assert dry.paths == ["1/ab/abcd/orphan.pdf"] and orphan.exists()

    result = cleanup_attachments(store, attachment_root, RetentionPolicy(), now=now)
    assert result.files == 1 and not orphan.exists()
    assert not (storage.root / "1" / "ab").exists()  # its emptied directories went too
    assert in_flight.exists() and (storage.root / kept).exists()
