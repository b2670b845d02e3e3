"""The fetch lease for a run: granted once; a second run is skipped with the holder named."""

from __future__ import annotations

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
