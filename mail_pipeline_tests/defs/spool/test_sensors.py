"""haraka_spool_sensor, through Dagster's public test helpers."""

from __future__ import annotations

import json
import os

import dagster as dg

from mail_pipeline.defs.spool.sensors import haraka_spool_sensor
from mail_pipeline_tests.defs.conftest import Rig
from mail_pipeline_tests.fixtures.spool_files import make_raw, write_pair


def _tick(
    rig: Rig, cursor: str | None
) -> tuple[dg.SensorResult | dg.RunRequest | dg.SkipReason, str | None]:
    context = dg.build_sensor_context(cursor=cursor, resources={"spool": rig.resources["spool"]})
    result = haraka_spool_sensor(context)
    return result, context.cursor  # type: ignore[return-value]


def test_spool_sensor_cursor_run_key_and_skip(rig: Rig) -> None:
    result, cursor = _tick(rig, None)
    assert isinstance(result, dg.SkipReason) and "empty" in (result.skip_message or "")
    first = write_pair(rig.spool_dir, make_raw(1), ["a@example.org"])
    os.utime(rig.spool_dir / "inbox" / f"{first}.meta", ns=(1_000_000_000, 1_000_000_000))
    result, cursor = _tick(rig, cursor)
    assert isinstance(result, dg.RunRequest)
    assert result.run_key == f"spool-1000000000-{first}.meta"
    assert json.loads(cursor or "{}")["name"] == f"{first}.meta"
    # Same files, same cursor: nothing new to request, however often the sensor ticks.
    again, cursor2 = _tick(rig, cursor)
    assert isinstance(again, dg.SkipReason) and "already requested" in (again.skip_message or "")
    assert cursor2 == cursor
    # A newer file gives a new, different run key.
    second = write_pair(rig.spool_dir, make_raw(2), ["a@example.org"])
    newer, _ = _tick(rig, cursor)
    assert isinstance(newer, dg.RunRequest) and newer.run_key != result.run_key
    assert newer.run_key is not None and second in newer.run_key
    # Files still waiting long after the last request (a failed run, retry-failed) are
    # requested again, once per slot.
    stale = json.loads(cursor or "{}")
    stale["requested_at"] = 0.0
    repeat, cursor3 = _tick(rig, json.dumps({**stale, "mtime_ns": 2**62, "name": "z"}))
    assert isinstance(repeat, dg.RunRequest)
    assert repeat.run_key is not None and repeat.run_key.startswith("spool-waiting-")
    soon, _ = _tick(rig, cursor3)
    assert isinstance(soon, dg.SkipReason)
    # A symlink in the inbox is never taken for a ready file.
    (rig.spool_dir / "inbox" / "evil.meta").symlink_to("/etc/passwd")
    from mail_pipeline.defs.spool.sensors import ready_files

    assert all(name != "evil.meta" for _, name in ready_files(rig.spool_dir))
