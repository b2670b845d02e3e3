"""The plotted metrics: which series, in what order, with what unit, and one point of them.

Every run that moves mail records a point of the ``mail_metrics`` asset (see
:mod:`mail_pipeline.defs.maintenance.assets`). :data:`SERIES` lists what a point holds, in the
order an operator reads: failing mailboxes, failed tasks, the spool backlog and its oldest
file, messages saved, run durations, then the rest. Each series has a description and a unit;
its metadata key (:attr:`Series.key`) starts with its rank and ends with its unit
(``"01 failing mailboxes [mailboxes]"``) because the UI plots a key's values over time and
orders the plots by key. The two windowed series (FAILED tasks and duplicates, over the last
``MAIL_PIPELINE_METRICS_WINDOW_HOURS``) say their window in their title, so their keys are
those of the default window, ``"02 failed tasks, 24 h [tasks]"``, unless it is set: values of
another window are another plot.

Gauges are the value at the point. Counters are per-interval deltas: what was added since the
previous point (the first point of a counter is 0, it only sets the baseline); their running
totals travel in the point (:attr:`MetricPoint.totals`, not plotted) so the next point can
subtract. ``messages_saved`` is counted in the store instead (:func:`messages_saved`): a
running total of the stored messages would go down when older messages are deleted, and the
saves of that interval would be lost. A series that has been 0 at every point so far is not
emitted; once it was not 0 it is emitted at every later point, zeros included, so its plot
has no holes.

No Dagster imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mail_pipeline.maintenance.metrics import Metrics
from mail_pipeline.platform.settings import DEFAULT_METRICS_WINDOW_HOURS
from mail_pipeline.storage.store import EmailSource, MailStore, TaskStatus


@dataclass(frozen=True)
class Series:
    """One plotted series: its id, title, unit, meaning, and whether it is a counter."""

    id: str
    title: str
    unit: str
    description: str
    #: True: the point holds the increase since the previous point, not the running total
    counter: bool = False
    #: True (a counter): the reading already is the increase since the previous point, as
    #: the store counted it (see :func:`messages_saved`), not a running total
    counted: bool = False

    def key(self, rank: int) -> str:
        """The metadata key of this series at ``rank`` (1-based): ``"01 title [unit]"``."""
        return f"{rank:02d} {self.title} [{self.unit}]"


def series_of(window_hours: int | None = DEFAULT_METRICS_WINDOW_HOURS) -> tuple[Series, ...]:
    """Return the series in the order an operator reads them, the windowed ones over the last
    ``window_hours`` (None: ``N`` hours, for a legend of any window)."""
    hours = "N" if window_hours is None else str(window_hours)
    return (
        Series(
            "failing_mailboxes",
            "failing mailboxes",
            "mailboxes",
            "active mailboxes whose latest fetch failed, or that are paused",
        ),
        Series(
            "failed_tasks_24h",
            f"failed tasks, {hours} h",
            "tasks",
            f"EmailTasks that ended FAILED in the last {hours} h",
        ),
        Series(
            "spool_backlog",
            "spool backlog",
            "messages",
            "messages waiting in the spool's inbox/",
        ),
        Series(
            "spool_oldest_age",
            "spool oldest waiting",
            "s",
            "age of the oldest message in the spool's inbox/ (0 when it is empty)",
        ),
        Series(
            "messages_saved",
            "messages saved",
            "messages per interval",
            "messages stored since the previous point, both sources (deleting older messages "
            "does not lower it)",
            counter=True,
            counted=True,
        ),
        Series(
            "imap_fetch_seconds",
            "IMAP fetch duration",
            "s",
            "how long the latest completed IMAP fetch run took",
        ),
        Series(
            "spool_ingest_seconds",
            "spool ingest duration",
            "s",
            "how long the latest completed spool ingest took",
        ),
        Series(
            "paused_mailboxes",
            "paused mailboxes",
            "mailboxes",
            "mailboxes the circuit breaker paused (mail-pipeline imap resume USER)",
        ),
        Series(
            "stale_tasks",
            "stale tasks",
            "tasks",
            "open EmailTasks without a heartbeat within their timeout",
        ),
        Series(
            "running_tasks",
            "running tasks",
            "tasks",
            "EmailTasks RUNNING now",
        ),
        Series(
            "duplicates_24h",
            f"duplicates, {hours} h",
            "messages",
            f"messages fetched again and not stored twice, in tasks of the last {hours} h",
        ),
        Series(
            "spool_failed",
            "spool failed/",
            "messages",
            "messages quarantined in the spool's failed/ (mail-pipeline spool retry-failed)",
        ),
        Series(
            "spool_unmatched",
            "spool unmatched/",
            "messages",
            "spool messages for no known user or alias (spool reingest-unmatched)",
        ),
        Series(
            "tasks_deleted",
            "tasks deleted by retention",
            "tasks per interval",
            "EmailTasks deleted by retention (audited) since the previous point",
            counter=True,
        ),
        Series(
            "active_mailboxes",
            "active mailboxes",
            "mailboxes",
            "active users with an IMAP configuration",
        ),
    )


def keys_of(window_hours: int = DEFAULT_METRICS_WINDOW_HOURS) -> dict[str, str]:
    """Return the metadata key of each series of :func:`series_of` ``window_hours``, by id."""
    return {s.id: s.key(rank) for rank, s in enumerate(series_of(window_hours), start=1)}


#: The series of the default window, in the order an operator reads them.
SERIES: tuple[Series, ...] = series_of()
#: The metadata key of each series of the default window, by id.
KEYS: dict[str, str] = keys_of()


def readings(metrics: Metrics, saved: SavedMessages) -> dict[str, float | int]:
    """Return the raw value of every series of :data:`SERIES` in ``metrics`` (and ``saved``,
    the ``messages_saved`` reading), by id.

    Counters are running totals here (:func:`next_point` turns them into deltas), except the
    ``counted`` ones. The spool series are 0 when the snapshot has no spool part.
    """
    spool = metrics.spool
    return {
        "failing_mailboxes": len(metrics.failing_active_mailboxes),
        "failed_tasks_24h": metrics.failed_in_window,
        "spool_backlog": spool.inbox_ready if spool else 0,
        "spool_oldest_age": round(spool.oldest_inbox_age_seconds or 0.0, 1) if spool else 0.0,
        "messages_saved": saved.count,
        "imap_fetch_seconds": round(metrics.last_run_seconds.get(EmailSource.IMAP.value, 0.0), 3),
        "spool_ingest_seconds": round(
            metrics.last_run_seconds.get(EmailSource.HARAKA.value, 0.0), 3
        ),
        "paused_mailboxes": len(metrics.paused_mailboxes),
        "stale_tasks": metrics.timed_out,
        "running_tasks": metrics.count(TaskStatus.RUNNING),
        "duplicates_24h": metrics.duplicates_in_window,
        "spool_failed": spool.failed if spool else 0,
        "spool_unmatched": spool.unmatched if spool else 0,
        "tasks_deleted": metrics.audited_tasks,
        "active_mailboxes": metrics.active_mailbox_count,
    }


@dataclass(frozen=True)
class PreviousPoint:
    """What the next point needs of the previous one: the series it emitted (by id) and the
    counters' running totals."""

    emitted: frozenset[str] = frozenset()
    totals: Mapping[str, int | float] = field(default_factory=dict)

    @classmethod
    def from_metadata(
        cls,
        keys: set[str] | frozenset[str],
        totals: Mapping[str, object],
        window_hours: int = DEFAULT_METRICS_WINDOW_HOURS,
    ) -> PreviousPoint:
        """Return the previous point from its metadata keys and its totals entry (unknown keys
        and non-numeric totals are ignored: a point of an older layout, or of another window
        than ``window_hours``)."""
        by_key = {key: series_id for series_id, key in keys_of(window_hours).items()}
        return cls(
            frozenset(by_key[k] for k in keys if k in by_key),
            {
                k: v
                for k, v in totals.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            },
        )


#: The totals entries :func:`messages_saved` keeps in a point for the next one (message ids,
#: the store's primary key): the mark the next point counts above, how many messages were
#: above it at this point, and the highest id seen so far (the mark after next).
SAVED_MARK = "messages_saved_mark"
SAVED_ABOVE_MARK = "messages_saved_above_mark"
SAVED_TOP = "messages_saved_top"


@dataclass(frozen=True)
class SavedMessages:
    """The ``messages_saved`` reading: the messages stored since the previous point, and the
    totals entries (:data:`SAVED_MARK` ...) the next point counts from."""

    count: int
    marks: dict[str, int]


def messages_saved(store: MailStore, previous: PreviousPoint | None) -> SavedMessages:
    """Return how many messages were stored since ``previous`` (0 at the first point, or
    after a point that has no marks: they set the baseline).

    The count is by primary key, so deleting older messages does not lower it, and a
    duplicate (which consumes a PostgreSQL sequence id) is not counted. Each point counts
    above the highest id the point before the previous one had seen, and subtracts what the
    previous point counted above that same mark: a batch that took its ids before the
    previous point but committed after it is counted by this point, not lost. Only a batch
    whose transaction spans a whole interval, or a new row reusing the id of a deleted
    newest row (SQLite, when the newest messages were deleted), can go uncounted.
    """
    totals = previous.totals if previous is not None else {}
    marks = [totals.get(key) for key in (SAVED_MARK, SAVED_ABOVE_MARK, SAVED_TOP)]
    if not all(isinstance(m, int) and m >= 0 for m in marks):
        _, _, top = store.messages.count_above(0, 0)
        return SavedMessages(0, {SAVED_MARK: top or 0, SAVED_ABOVE_MARK: 0, SAVED_TOP: top or 0})
    mark, above_mark, last_top = (int(m or 0) for m in marks)
    now_above_mark, above_last_top, top = store.messages.count_above(mark, last_top)
    return SavedMessages(
        max(0, now_above_mark - above_mark),
        {
            SAVED_MARK: last_top,
            SAVED_ABOVE_MARK: above_last_top,
            SAVED_TOP: max(last_top, top or 0),
        },
    )


@dataclass(frozen=True)
class MetricPoint:
    """One point: the emitted values in :data:`SERIES` order (key -> value) and the counters'
    running totals (id -> total) for the next point."""

    values: dict[str, float | int]
    totals: dict[str, int | float]


def next_point(
    current: Mapping[str, float | int],
    previous: PreviousPoint | None = None,
    marks: Mapping[str, int] | None = None,
    window_hours: int = DEFAULT_METRICS_WINDOW_HOURS,
) -> MetricPoint:
    """Return the point of the raw ``current`` readings (see :func:`readings`) after
    ``previous`` (None: this is the first point), keyed by the series of ``window_hours``
    (the window the readings were counted over); ``marks`` (those of
    :class:`SavedMessages`) go into its totals as they are.

    A counter's value is its increase since ``previous`` (never negative: a total that went
    down, e.g. rows deleted by hand, starts a new baseline); with no previous total it is 0.
    A ``counted`` counter's value is its reading. A series whose value is 0 is left out
    unless ``previous`` emitted it.

    Raises:
        KeyError: ``current`` lacks a series of :data:`SERIES`.
    """
    before = previous or PreviousPoint()
    values: dict[str, float | int] = {}
    totals: dict[str, int | float] = dict(marks or {})
    keys = keys_of(window_hours)
    for series in series_of(window_hours):
        raw = current[series.id]
        value = raw
        if series.counter and not series.counted:
            totals[series.id] = raw
            last = before.totals.get(series.id)
            value = 0 if last is None else max(0, raw - last)
        if value != 0 or series.id in before.emitted:
            values[keys[series.id]] = value
    return MetricPoint(values, totals)


def legend(window_hours: int | None = DEFAULT_METRICS_WINDOW_HOURS) -> str:
    """Return the series of ``window_hours`` as a Markdown list: each key (rank, title, unit)
    and its meaning (None: the windowed ones over ``N`` hours, for any window)."""
    return "\n".join(
        f"- **{s.key(rank)}**: {s.description}"
        for rank, s in enumerate(series_of(window_hours), start=1)
    )
