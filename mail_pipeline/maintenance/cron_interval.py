"""How long a cron schedule can leave between two runs: the fetch schedule's interval, for health.

``MAIL_PIPELINE_FETCH_CRON`` (default :data:`DEFAULT_FETCH_CRON`, the same as
``email_fetch_schedule``'s) is a five-field cron expression (minute, hour, day of month, month,
day of week; ``*``, ``*/n``, ``a-b``, ``a-b/n``, lists, month and weekday names, ``7`` for
Sunday, and the ``@hourly``/``@daily``/``@weekly``/``@monthly``/``@yearly`` macros).
:func:`schedule_interval_seconds` returns the longest gap between two consecutive ticks, so a
health rule of "N intervals without a successful fetch" never fires between two ticks that
are merely far apart (``0 9-17 * * 1-5`` waits 64 h over a weekend).

No Dagster imports.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta

#: The fetch schedule's cron when ``MAIL_PIPELINE_FETCH_CRON`` is unset (``email_fetch_schedule``).
DEFAULT_FETCH_CRON = "*/5 * * * *"

_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i + 1 for i, m in enumerate(_MONTH_NAMES)}
_WEEKDAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
#: Ticks are looked for over this many days from a fixed date (covers leap years and weekdays).
_SPAN_DAYS = 4 * 366
_START = date(2024, 1, 1)


def _field(text: str, low: int, high: int, names: dict[str, int], what: str) -> set[int]:
    """Return the values one cron field allows.

    Raises:
        ValueError: the field is not valid cron.
    """
    values: set[int] = set()
    for part in text.lower().split(","):
        base, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
        except ValueError:
            raise ValueError(f"bad step {step_text!r} in the {what} field {text!r}") from None
        if step < 1:
            raise ValueError(f"bad step {step} in the {what} field {text!r}")
        if base == "*":
            first, last = low, high
        else:
            start_text, dash, end_text = base.partition("-")
            first = _value(start_text, names, what, text)
            last = _value(end_text, names, what, text) if dash else (high if step_text else first)
        if not low <= first <= last <= high:
            raise ValueError(f"the {what} field {text!r} is out of {low}-{high}")
        values.update(range(first, last + 1, step))
    return values


def _value(text: str, names: dict[str, int], what: str, field: str) -> int:
    if text in names:
        return names[text]
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"bad value {text!r} in the {what} field {field!r}") from None


def schedule_interval_seconds(cron: str) -> float:
    """Return the longest time, in seconds, between two consecutive ticks of ``cron`` (UTC).

    Raises:
        ValueError: ``cron`` is not a valid five-field cron expression, or it does not fire
            twice in four years.
    """
    expression = _MACROS.get(cron.strip().lower(), cron)
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"{cron!r} is not a five-field cron expression")
    minute, hour, dom, month, dow = fields
    minutes = _field(minute, 0, 59, {}, "minute")
    hours = _field(hour, 0, 23, {}, "hour")
    days = _field(dom, 1, 31, {}, "day-of-month")
    months = _field(month, 1, 12, _MONTHS, "month")
    weekdays = {d % 7 for d in _field(dow, 0, 7, _WEEKDAYS, "day-of-week")}
    times = sorted(h * 60 + m for h in hours for m in minutes)
    # Day of month and day of week: either may match when both are restricted (cron's rule).
    dom_any, dow_any = dom.startswith("*"), dow.startswith("*")
    widest = max((b - a for a, b in itertools.pairwise(times)), default=0)
    previous_day: int | None = None
    for offset in range(_SPAN_DAYS):
        day = _START + timedelta(days=offset)
        if day.month not in months:
            continue
        by_dom, by_dow = day.day in days, day.isoweekday() % 7 in weekdays
        if dom_any and dow_any:
            matches = True
        elif dom_any:
            matches = by_dow
        elif dow_any:
            matches = by_dom
        else:
            matches = by_dom or by_dow
        if not matches:
            continue
        if previous_day is not None:
            widest = max(widest, (offset - previous_day) * 1440 + times[0] - times[-1])
        previous_day = offset
    if previous_day is None or widest == 0:
        raise ValueError(f"{cron!r} does not fire at least twice in four years")
    return float(widest * 60)
