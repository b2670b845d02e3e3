"""Fixtures of the spool tests that run on a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mail_pipeline.intake.spool.ingest import SpoolIngestService
from mail_pipeline.storage.store import MailStore


@pytest.fixture
def service(store: MailStore, spool: Path, attachment_root: Path) -> SpoolIngestService:
    """An ingest service on the test module's ``spool`` directory (no fsync)."""
    return SpoolIngestService(store, spool, attachment_root, fsync=False)


@pytest.fixture
def users(store: MailStore) -> dict[str, int]:
    """Three users, alice, bob and carol @example.org: name -> user id."""
    return {
        "alice": store.users.add("alice", "alice@example.org").id,
        "bob": store.users.add("bob", "bob@example.org").id,
        "carol": store.users.add("carol", "carol@example.org").id,
    }
