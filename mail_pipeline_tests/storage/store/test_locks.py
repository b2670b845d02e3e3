"""Lease locks: owner tokens, expiry take-over, and races on both databases."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta

import pytest

from mail_pipeline.storage.store import MailStore


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_acquire_and_release(store: MailStore) -> None:
    token = store.locks.acquire("fetch", 60, run_id="run-a")
    assert token
    assert store.locks.acquire("fetch", 60) is None
    lease = store.locks.live("fetch")
    assert lease is not None and lease.run_id == "run-a"
    assert store.locks.release("fetch", token) is True
    assert store.locks.get("fetch") is None
    assert store.locks.acquire("fetch", 60) is not None


def test_only_the_holder_releases(store: MailStore) -> None:
    """The seed released the lock in ``finally`` even from a run that never got it."""
    holder = store.locks.acquire("fetch", 60)
    assert holder is not None
    loser = store.locks.acquire("fetch", 60)
    assert loser is None
    assert store.locks.release("fetch", "not-the-token") is False
    assert store.locks.live("fetch") is not None
    assert store.locks.release("fetch", holder) is True
    assert store.locks.release("fetch", holder) is False


def test_expired_lease_is_taken_over(store_url: str) -> None:
    clock = FakeClock()
    store = MailStore(store_url, clock=clock)
    old = store.locks.acquire("fetch", 600)
    assert old is not None
    clock.now += timedelta(seconds=599)
    assert store.locks.acquire("fetch", 600) is None
    clock.now += timedelta(seconds=2)
    new = store.locks.acquire("fetch", 600, run_id="run-b")
    assert new is not None and new != old
    # The old holder lost it: it can neither renew nor release the new lease.
    assert store.locks.renew("fetch", old, 600) is False
    assert store.locks.release("fetch", old) is False
    assert store.locks.live("fetch") is not None
    assert store.locks.renew("fetch", new, 600) is True
    store.dispose()


def test_ttl_is_in_seconds(store_url: str) -> None:
    """The seed passed its timeout in the wrong unit."""
    clock = FakeClock()
    store = MailStore(store_url, clock=clock)
    store.locks.acquire("fetch", 600)
    lease = store.locks.get("fetch")
    assert lease is not None
    assert lease.expires_at - lease.acquired_at == timedelta(seconds=600)
    store.dispose()


def test_release_for_run_and_force(store: MailStore) -> None:
    store.locks.acquire("fetch", 60, run_id="run-a")
    assert store.locks.release_for_run("fetch", "run-b") is False
    assert store.locks.release_for_run("fetch", "run-a") is True
    store.locks.acquire("fetch", 60)
    assert store.locks.force_release("fetch") is True
    assert store.locks.all() == []
    # No name: every lease of that run, and only that run's.
    for name in ("a", "b"):
        store.locks.acquire(name, 60, run_id="run-a")
    store.locks.acquire("c", 60, run_id="run-b")
    assert store.locks.release_for_run(None, "run-a") is True
    assert [lease.name for lease in store.locks.all()] == ["c"]


def test_bad_arguments(store: MailStore) -> None:
    with pytest.raises(ValueError):
        store.locks.acquire("", 60)
    with pytest.raises(ValueError):
        store.locks.acquire("fetch", 0)


def test_threads_race_for_a_free_lock(store_url: str) -> None:
    store = MailStore(store_url)
    barrier = threading.Barrier(16)
    winners: list[str] = []

    def contender() -> None:
        barrier.wait()
        token = store.locks.acquire("race", 60)
        if token:
            winners.append(token)

    threads = [threading.Thread(target=contender) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    store.dispose()


def _race_for_expired(url: str, start: object, results: object) -> None:
    store = MailStore(url)
    start.wait()  # type: ignore[attr-defined]
    token = store.locks.acquire("race", 60)
    results.put(token)  # type: ignore[attr-defined]
    store.dispose()


def test_processes_race_to_take_over_an_expired_lease(store_url: str) -> None:
    clock = FakeClock()
    clock.now = datetime(2000, 1, 1, tzinfo=UTC)
    old_store = MailStore(store_url, clock=clock)
    assert old_store.locks.acquire("race", 1) is not None  # expired long ago
    old_store.dispose()
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_race_for_expired, args=(store_url, start, results)) for _ in range(6)
    ]
    for p in procs:
        p.start()
    start.set()
    tokens = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sum(1 for t in tokens if t) == 1


def test_ensure_renews_or_retakes_with_the_same_token(store_url: str) -> None:
    clock = FakeClock()
    store = MailStore(store_url, clock=clock)
    token = store.locks.acquire("fetch", 60, run_id="parent")
    assert token is not None
    assert store.locks.ensure("fetch", token, 60, run_id="parent") is True
    # Freed by a run-failure sensor, then a re-execution carries the parent's token.
    store.locks.release_for_run("fetch", "parent")
    assert store.locks.ensure("fetch", token, 60, run_id="child") is True
    lease = store.locks.live("fetch")
    assert lease is not None and lease.run_id == "child"
    # Someone else's live lease is never taken.
    assert store.locks.ensure("fetch", "other-token", 60) is False
    clock.now += timedelta(seconds=61)
    assert store.locks.ensure("fetch", "other-token", 60) is True
    assert store.locks.release("fetch", token) is False
    store.dispose()


def test_owner_info_fits_its_column(store: MailStore) -> None:
    token = store.locks.acquire("info", 60, owner_info="host\x00-" + "x" * 600)
    assert token is not None
    lease = store.locks.get("info")
    assert lease is not None and lease.owner_info == ("host-" + "x" * 600)[:500]
