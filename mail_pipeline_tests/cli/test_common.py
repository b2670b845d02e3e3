"""What the command modules share: times, JSON, styled states, tables, the one-line error, the
lazy store and the project check."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from rich.console import Console

from mail_pipeline.cli.common import (
    STATE_STYLES,
    Context,
    ProjectNotFound,
    Rows,
    emit_json,
    iso_time,
    new_table,
    print_error,
    show_time,
    sqlite_path,
    state_text,
)
from mail_pipeline.platform.settings import Settings
from mail_pipeline.storage.store import TaskStatus


def test_show_time_has_the_zone_and_no_microseconds() -> None:
    assert show_time(None) == "-"
    assert show_time(datetime(2026, 11, 25, 12, 3, 4, 999, tzinfo=UTC)) == "2026-11-25 12:03:04 UTC"
    plus_two = timezone(timedelta(hours=2))
    assert show_time(datetime(2026, 12, 3, 13, 30, 5, 1, tzinfo=plus_two)) == (
        "2026-12-03 11:30:05 UTC"
    )
    assert show_time(datetime(2026, 12, 3, 11, 30, 5, 123456)) == "2026-12-03 11:30:05 UTC"
    assert show_time("2026-12-03T11:30:05.123456+00:00") == "2026-12-03 11:30:05 UTC"
    assert show_time("yesterday") == "yesterday"


def test_iso_time_and_json_carry_the_zone(capsys: pytest.CaptureFixture[str]) -> None:
    naive = datetime(2026, 12, 3, 11, 30, 5, 250000)
    assert iso_time(naive) == "2026-12-03T11:30:05.250000+00:00"
    assert iso_time(None) is None
    emit_json({"at": naive, "status": TaskStatus.FAILED, "path": Path("/x"), "ids": {1}})
    data = json.loads(capsys.readouterr().out)
    assert data == {
        "at": "2026-12-03T11:30:05.250000+00:00",
        "status": "FAILED",
        "path": "/x",
        "ids": [1],
    }
    assert datetime.fromisoformat(data["at"]).tzinfo is not None


def test_every_task_state_has_a_style() -> None:
    assert {s.value for s in TaskStatus} <= set(STATE_STYLES)
    assert state_text("FAILED").style == "bold red"
    assert state_text("PAUSED since 2026-12-03 11:30:05 UTC").style == "yellow"
    assert state_text("COMPLETED").style == "green"
    assert state_text("whatever").style == ""


def test_states_are_coloured_on_a_terminal_only() -> None:
    for terminal, coloured in ((True, True), (None, False)):  # None: rich asks isatty()
        buffer = io.StringIO()
        console = Console(file=buffer, force_terminal=terminal)
        console.print(state_text("FAILED"))
        assert ("\x1b[1;31mFAILED" in buffer.getvalue()) is coloured
        assert "FAILED" in buffer.getvalue()


def _printed(rows: Rows, width: int) -> str:
    buffer = io.StringIO()
    context = Context()
    context.__dict__["out"] = Console(file=buffer, width=width)
    context.print_table(rows, "no rows")
    return buffer.getvalue()


def test_rows_are_a_table_when_they_fit_and_blocks_when_not() -> None:
    task_id = "98745d75-d87c-45bd-ab34-65163fea1f7c"
    rows = new_table("task", "state", "count", numbers=("count",))
    assert _printed(rows, 80) == "no rows\n"
    rows.add_row(task_id, state_text("FAILED"), "12345")
    assert rows.width() == 36 + 3 + 6 + 3 + 5
    wide = _printed(rows, 53)
    (line,) = [line for line in wide.splitlines() if task_id in line]
    assert line.split() == [task_id, "FAILED", "12345"]
    narrow = _printed(rows, 52)
    assert narrow == f"{task_id}\n    state: FAILED count: 12345\n"
    assert "…" not in wide + narrow
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        rows.add_row("a", "b")


def test_print_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    print_error("error: database:\n  connection   refused\n")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "mail-pipeline: error: database: connection refused\n"


def test_sqlite_path() -> None:
    assert sqlite_path("sqlite:////srv/mail.db") == Path("/srv/mail.db")
    assert sqlite_path("sqlite:///var/mail.db") == Path("var/mail.db").absolute()
    assert sqlite_path("sqlite+pysqlite:////srv/mail.db?timeout=5") == Path("/srv/mail.db")
    assert sqlite_path("sqlite://") is None
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql://u@h/db") is None


def _settings(tmp_path: Path, url: str) -> Settings:
    return Settings(
        home=tmp_path, database_url=url, attachment_root=tmp_path / "a", spool_dir=tmp_path / "s"
    )


def test_the_context_opens_the_store_only_when_used(store_url: str, tmp_path: Path) -> None:
    unused = Context(_settings(tmp_path, "postgresql://nobody@127.0.0.1:1/none"))
    unused.close()  # never opened: nothing to release, no connection tried
    assert "store" not in unused.__dict__
    used = Context(_settings(tmp_path, store_url))
    assert used.store is used.store and used.store.table_names()
    used.close()


def test_the_context_creates_nothing_for_a_missing_store(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "mail.db"
    context = Context(_settings(tmp_path, f"sqlite:///{missing}"))
    with pytest.raises(ProjectNotFound, match="mail-pipeline db upgrade"):
        _ = context.store
    assert not missing.parent.exists()
    created = context.create_store()  # db upgrade / demo
    assert missing.parent.is_dir()
    created.dispose()


def test_a_store_without_schema_is_not_a_project(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    context = Context(_settings(tmp_path, f"sqlite:///{empty}"))
    with pytest.raises(ProjectNotFound, match="no mail_pipeline schema"):
        _ = context.store
