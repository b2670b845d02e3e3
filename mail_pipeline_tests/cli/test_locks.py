"""``mail-pipeline locks``: list the leases, release one (a live one only with --force)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.cli.conftest import Run


def _now() -> datetime:
    return datetime.now(UTC)


def test_locks_list_and_release(cli: Run, store_url: str) -> None:
    assert cli("locks", "list").out == "no locks\n"
    assert json.loads(cli("locks", "list", "--json").out) == []
    store = MailStore(store_url)
    store.locks.acquire("email_fetch", 600, run_id="run-1", owner_info="dagster run run-1")
    listed = cli("locks", "list")
    assert "email_fetch" in listed.out and "live" in listed.out and "run-1" in listed.out
    assert " UTC" in listed.out
    (lease,) = json.loads(cli("locks", "list", "--json").out)
    assert (lease["name"], lease["live"], lease["run_id"]) == ("email_fetch", True, "run-1")
    assert datetime.fromisoformat(lease["expires_at"]).utcoffset() is not None
    refused = cli("locks", "release", "email_fetch")
    assert refused.code == 1 and "--force" in refused.err
    assert store.locks.get("email_fetch") is not None
    released = cli("locks", "release", "email_fetch", "--force")
    assert released.code == 0 and store.locks.get("email_fetch") is None
    assert cli("locks", "release", "email_fetch").code == 2
    past = MailStore(store_url, clock=lambda: _now() - timedelta(hours=2))
    past.locks.acquire("email_fetch", 60, run_id="dead")
    past.dispose()
    assert cli("locks", "release", "email_fetch").code == 0  # expired: no --force needed
    store.dispose()
