"""The longest gap between two ticks of a cron schedule."""

from __future__ import annotations

import pytest

from mail_pipeline.maintenance.cron_interval import schedule_interval_seconds

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


@pytest.mark.parametrize(
    ("cron", "seconds"),
    [
        ("*/5 * * * *", 5 * MINUTE),
        ("* * * * *", MINUTE),
        ("*/7 * * * *", 7 * MINUTE),  # :56 to :00 is shorter; :00 to :07 is the longest
        ("0,30 * * * *", 30 * MINUTE),
        ("15 */6 * * *", 6 * HOUR),
        ("5-55/10 2-4 * * *", DAY - 2 * HOUR - 50 * MINUTE),  # 04:55 to 02:05 the next day
        ("@hourly", HOUR),
        ("@daily", DAY),
        ("0 0 * * sun", 7 * DAY),
        ("0 0 * * 7", 7 * DAY),
        ("0 9-17 * * mon-fri", 64 * HOUR),
        ("0 0 1 * *", 31 * DAY),
        ("0 0 1 jan,jul *", 184 * DAY),
        ("0 0 13 * fri", 7 * DAY),  # either the 13th or a Friday: never more than a week
    ],
)
def test_interval_of(cron: str, seconds: float) -> None:
    assert schedule_interval_seconds(cron) == seconds


@pytest.mark.parametrize(
    "cron",
    ["", "* * * *", "*/0 * * * *", "60 * * * *", "* * * * 8", "a * * * *", "0 0 30 2 *"],
)
def test_bad_or_never_firing_expressions_are_refused(cron: str) -> None:
    with pytest.raises(ValueError):
        schedule_interval_seconds(cron)
