"""The plotted series: their order, units and descriptions, counters as deltas, zero series,
and messages saved per interval as the store counts them."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import UTC, datetime

from sqlalchemy import delete, insert

from mail_pipeline.maintenance.metric_points import (
    KEYS,
    SAVED_ABOVE_MARK,
    SAVED_MARK,
    SAVED_TOP,
    SERIES,
    MetricPoint,
    PreviousPoint,
    SavedMessages,
    keys_of,
    legend,
    messages_saved,
    next_point,
    readings,
)
from mail_pipeline.maintenance.metrics import Metrics, SpoolMetrics
from mail_pipeline.storage.store import MailboxStatus, MailStore
from mail_pipeline.storage.store.models import EmailMessage
from mail_pipeline_tests.fixtures.message_rows import message_row, save_messages

NONE_SAVED = SavedMessages(0, {})


def _mailbox(name: str, *, failures: int = 0, paused: bool = False) -> MailboxStatus:
    return MailboxStatus(1, name, None, None, None, failures, 0, "", "", paused, "", None)


def _metrics(**changes: object) -> Metrics:
    base = Metrics(
        generated_at=datetime(2026, 12, 3, tzinfo=UTC),
        tasks_by_status={},
        timed_out=0,
        failed_last_hour=0,
        failed_in_window=0,
        duplicates_in_window=0,
        throughput={},
        audited_tasks=0,
        spool=SpoolMetrics(0, 0, 0, None),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_the_operator_reads_failures_then_the_spool_then_throughput() -> None:
    assert [s.id for s in SERIES[:7]] == [
        "failing_mailboxes",
        "failed_tasks_24h",
        "spool_backlog",
        "spool_oldest_age",
        "messages_saved",
        "imap_fetch_seconds",
        "spool_ingest_seconds",
    ]
    # The UI orders plots by key: the keys sort in the order above.
    keys = [KEYS[s.id] for s in SERIES]
    assert sorted(keys) == keys and len(set(keys)) == len(keys)
    assert keys[0] == "01 failing mailboxes [mailboxes]"
    assert KEYS["spool_oldest_age"] == "04 spool oldest waiting [s]"
    assert KEYS["messages_saved"] == "05 messages saved [messages per interval]"


def test_every_series_has_a_unit_and_a_description_in_the_legend() -> None:
    text = legend()
    for series in SERIES:
        assert series.unit and series.description and series.title
        assert f"- **{KEYS[series.id]}**: {series.description}" in text
    counters = {s.id for s in SERIES if s.counter}
    assert counters == {"messages_saved", "tasks_deleted"}
    assert all("per interval" in s.unit for s in SERIES if s.counter)


def test_the_windowed_series_say_their_window_and_keep_the_default_keys() -> None:
    # The default window's keys are the ones the plots have always had.
    assert KEYS["failed_tasks_24h"] == "02 failed tasks, 24 h [tasks]"
    assert KEYS["duplicates_24h"] == "11 duplicates, 24 h [messages]"
    six = keys_of(6)
    assert six["failed_tasks_24h"] == "02 failed tasks, 6 h [tasks]"
    assert six["duplicates_24h"] == "11 duplicates, 6 h [messages]"
    # Only those two differ; the order (rank) and the ids are the same.
    assert {k for k in KEYS if KEYS[k] != six[k]} == {"failed_tasks_24h", "duplicates_24h"}
    assert list(six) == list(KEYS)
    text = legend(6)
    assert (
        "- **02 failed tasks, 6 h [tasks]**: EmailTasks that ended FAILED in the last 6 h" in text
    )
    assert "in tasks of the last 6 h" in text and "24" not in text
    assert "**02 failed tasks, N h [tasks]**: EmailTasks that ended FAILED in the last N h" in (
        legend(None)
    )


def test_a_point_of_another_window_is_keyed_by_it() -> None:
    current = readings(_metrics(failed_in_window=2, duplicates_in_window=1), NONE_SAVED)
    first = next_point(current, window_hours=6)
    assert first.values == {"02 failed tasks, 6 h [tasks]": 2, "11 duplicates, 6 h [messages]": 1}
    # The next point of the same window goes on with them (at 0, no holes)...
    quiet = readings(_metrics(), NONE_SAVED)
    same = PreviousPoint.from_metadata(set(first.values), first.totals, 6)
    assert same.emitted == frozenset({"failed_tasks_24h", "duplicates_24h"})
    assert next_point(quiet, same, window_hours=6).values == {
        "02 failed tasks, 6 h [tasks]": 0,
        "11 duplicates, 6 h [messages]": 0,
    }
    # ...while after a change of window they are another plot: the old keys are not read.
    other = PreviousPoint.from_metadata(set(first.values), first.totals)
    assert other.emitted == frozenset()
    assert next_point(quiet, other).values == {}


def test_readings_of_a_snapshot() -> None:
    metrics = _metrics(
        failed_in_window=4,
        timed_out=1,
        tasks_by_status={"RUNNING": 2, "COMPLETED": 9},
        duplicates_in_window=3,
        audited_tasks=11,
        spool=SpoolMetrics(5, 2, 1, 91.26),
        active_mailbox_count=3,
        mailboxes=[_mailbox("a", failures=2), _mailbox("b", paused=True), _mailbox("c")],
        active_mailboxes=[_mailbox("a", failures=2), _mailbox("b", paused=True)],
        last_run_seconds={"IMAP_EMAIL_FETCH": 12.3456, "HARAKA_EMAIL_FETCH": 0.5},
    )
    assert readings(metrics, SavedMessages(120, {})) == {
        "failing_mailboxes": 2,
        "failed_tasks_24h": 4,
        "spool_backlog": 5,
        "spool_oldest_age": 91.3,
        "messages_saved": 120,
        "imap_fetch_seconds": 12.346,
        "spool_ingest_seconds": 0.5,
        "paused_mailboxes": 1,
        "stale_tasks": 1,
        "running_tasks": 2,
        "duplicates_24h": 3,
        "spool_failed": 2,
        "spool_unmatched": 1,
        "tasks_deleted": 11,
        "active_mailboxes": 3,
    }
    assert readings(_metrics(spool=None), NONE_SAVED)["spool_oldest_age"] == 0.0


def test_counters_are_deltas_and_zero_only_series_are_dropped() -> None:
    quiet = readings(_metrics(active_mailbox_count=2, audited_tasks=100), NONE_SAVED)
    first = next_point(quiet, marks={SAVED_MARK: 9})
    # The first point: counters set their baseline (0) and only non-zero series appear.
    assert first.values == {KEYS["active_mailboxes"]: 2}
    assert first.totals == {SAVED_MARK: 9, "tasks_deleted": 100}

    def after(
        point_values: dict[str, float | int], totals: dict[str, int | float]
    ) -> PreviousPoint:
        return PreviousPoint.from_metadata(set(point_values) | {"counter totals"}, totals)

    busy = readings(
        _metrics(
            active_mailbox_count=2,
            audited_tasks=107,
            spool=SpoolMetrics(3, 0, 0, 12.0),
            last_run_seconds={"IMAP_EMAIL_FETCH": 4.0},
        ),
        SavedMessages(4, {}),
    )
    second = next_point(busy, after(first.values, first.totals))
    assert list(second.values) == [
        KEYS["spool_backlog"],
        KEYS["spool_oldest_age"],
        KEYS["messages_saved"],
        KEYS["imap_fetch_seconds"],
        KEYS["tasks_deleted"],
        KEYS["active_mailboxes"],
    ]
    assert second.values[KEYS["tasks_deleted"]] == 7  # not the running total, 107
    assert second.values[KEYS["messages_saved"]] == 4  # counted by the store: as read
    assert second.values[KEYS["spool_backlog"]] == 3
    assert second.totals == {"tasks_deleted": 107}
    # Nothing new: a series once emitted goes on at 0, so its plot has no holes.
    third = next_point(
        readings(_metrics(active_mailbox_count=2, audited_tasks=107), NONE_SAVED),
        after(second.values, second.totals),
    )
    assert third.values == {
        KEYS["spool_backlog"]: 0,
        KEYS["spool_oldest_age"]: 0.0,
        KEYS["messages_saved"]: 0,
        KEYS["imap_fetch_seconds"]: 0.0,
        KEYS["tasks_deleted"]: 0,
        KEYS["active_mailboxes"]: 2,
    }
    # A total that went down (rows deleted by hand) starts a new baseline, never a negative.
    fourth = next_point(
        readings(_metrics(active_mailbox_count=2, audited_tasks=90), NONE_SAVED),
        after(third.values, third.totals),
    )
    assert fourth.values[KEYS["tasks_deleted"]] == 0 and fourth.totals["tasks_deleted"] == 90


def test_a_previous_point_of_an_older_layout_is_read_safely() -> None:
    previous = PreviousPoint.from_metadata(
        {"total_tasks", "mailboxes_paused", KEYS["stale_tasks"]},
        {"tasks_deleted": 5, "messages_saved": "x", "other": True},
    )
    assert previous.emitted == frozenset({"stale_tasks"})
    assert dict(previous.totals) == {"tasks_deleted": 5}
    point = next_point(readings(_metrics(audited_tasks=8), NONE_SAVED), previous)
    assert point.values == {KEYS["tasks_deleted"]: 3, KEYS["stale_tasks"]: 0}


def _point(store: MailStore, previous: MetricPoint | None = None) -> MetricPoint:
    """The next point of ``store`` after ``previous``, as the mail_metrics asset records it."""
    before = None
    if previous is not None:
        before = PreviousPoint.from_metadata(set(previous.values), previous.totals)
    saved = messages_saved(store, before)
    return next_point(readings(_metrics(), saved), before, saved.marks)


def _saved(point: MetricPoint) -> float | int:
    return point.values.get(KEYS["messages_saved"], 0)


def test_messages_saved_is_what_was_stored_even_when_older_messages_are_deleted(
    store: MailStore,
) -> None:
    alice = store.users.add("alice", "alice@example.org").id
    old = save_messages(store, alice, range(30))
    first = _point(store)
    assert _saved(first) == 0  # the baseline
    assert first.totals[SAVED_MARK] == first.totals[SAVED_TOP] == old[-1]
    save_messages(store, alice, range(30, 35))
    with store.engine.begin() as connection:  # retention of the 20 oldest messages
        connection.execute(delete(EmailMessage).where(EmailMessage.id <= old[19]))
    assert store.messages.count() == 15  # the total went down by 15...
    second = _point(store, first)
    assert _saved(second) == 5  # ...and the interval still saved 5
    # Duplicates consume PostgreSQL ids but are not saves.
    store.messages.insert_batch([message_row(alice, n) for n in (25, 30, 35)])
    third = _point(store, second)
    assert _saved(third) == 1
    assert _saved(_point(store, third)) == 0


def test_a_message_committed_after_a_point_with_a_lower_id_is_counted_once(
    store: MailStore,
) -> None:
    """A batch takes its ids when it inserts and is seen when it commits: on PostgreSQL a
    batch with lower ids can commit after a point that saw higher ones."""
    alice = store.users.add("alice", "alice@example.org").id
    top = save_messages(store, alice, range(3))[-1]

    def commit(pk: int) -> None:  # a row with a chosen id, as a late commit leaves it
        row = {k: v for k, v in asdict(message_row(alice, pk)).items() if k != "attachments"}
        with store.engine.begin() as connection:
            connection.execute(insert(EmailMessage).values(id=pk, created_at=store.clock(), **row))

    first = _point(store)
    commit(top + 2)
    commit(top + 3)
    second = _point(store, first)
    assert _saved(second) == 2 and second.totals[SAVED_TOP] == top + 3
    commit(top + 1)  # took its id before the second point, committed after it
    third = _point(store, second)
    assert _saved(third) == 1
    assert (third.totals[SAVED_MARK], third.totals[SAVED_ABOVE_MARK]) == (top + 3, 0)
    assert _saved(_point(store, third)) == 0
