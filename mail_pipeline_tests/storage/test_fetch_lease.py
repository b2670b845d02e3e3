"""The fetch lease for a run: granted once; a second run is skipped with the holder named,
or, when it may wait (a backfill), gets the lease once the holder releases it."""

from __future__ import annotations

import threading

from mail_pipeline.storage.fetch_lease import take_fetch_lease
from mail_pipeline.storage.store import EmailSource, MailStore, TaskStatus


def test_the_first_run_gets_the_lease_and_a_second_is_skipped_with_the_reason(
    store: MailStore,
) -> None:
    first = take_fetch_lease(store, "fetch", 60, "run-1")
    assert first.grant is not None and first.skipped_because == ""
    assert (first.grant.name, first.grant.ttl_seconds) == ("fetch", 60)
    assert store.tasks.recent(status=TaskStatus.SKIPPED) == []

    second = take_fetch_lease(store, "fetch", 60, "run-2")

    assert second.grant is None
    assert "run-1" in second.skipped_because
    skipped = store.tasks.recent(status=TaskStatus.SKIPPED)
    assert sorted(t.email_source for t in skipped) == sorted(EmailSource)
    assert all(t.run_id == "run-2" and any("run-1" in e["message"] for e in t.log) for t in skipped)


def test_the_lease_is_free_again_once_released(store: MailStore) -> None:
    first = take_fetch_lease(store, "fetch", 60, "run-1")
    assert first.grant is not None
    assert store.locks.release(first.grant.name, first.grant.token)
    assert take_fetch_lease(store, "fetch", 60, "run-2").grant is not None


def test_a_waiting_run_gets_the_lease_once_the_holder_releases_it(store: MailStore) -> None:
    first = take_fetch_lease(store, "fetch", 60, "run-1")
    assert first.grant is not None
    grant = first.grant
    releaser = threading.Timer(0.5, lambda: store.locks.release(grant.name, grant.token))
    releaser.start()
    try:
        waited = take_fetch_lease(store, "fetch", 60, "run-2", wait_seconds=30, poll_seconds=0.1)
    finally:
        releaser.join()
    assert waited.grant is not None
    assert store.tasks.recent(status=TaskStatus.SKIPPED) == []


def test_a_run_that_waited_in_vain_is_skipped_and_says_it_waited(store: MailStore) -> None:
    assert take_fetch_lease(store, "fetch", 60, "run-1").grant is not None
    late = take_fetch_lease(store, "fetch", 60, "run-2", wait_seconds=0.3, poll_seconds=0.1)
    assert late.grant is None
    assert "run-1" in late.skipped_because and "(waited 0 s)" in late.skipped_because
