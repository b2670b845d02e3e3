"""``mail-pipeline tasks list|show``: whole IDs, prefixes, colours, JSON, the empty list."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from mail_pipeline.cli.tasks import SOURCES, STATUSES
from mail_pipeline.storage.store import EmailSource, MailStore, TaskCounters, TaskStatus
from mail_pipeline_tests.cli.conftest import Run, clean_environ, run_installed

LONG_ERROR = (
    "StorageUnavailable: the attachment root /srv/mail/attachments is full (no space left on "
    "device); the batch went back to the inbox and the next run stores it"
)


def test_the_choices_are_the_store_values() -> None:
    assert tuple(s.value for s in TaskStatus) == STATUSES
    assert tuple(s.value for s in EmailSource) == SOURCES


def test_tasks_list_shows_state_counters_and_age(cli: Run, store_url: str) -> None:
    store = MailStore(store_url)
    task = store.tasks.create(EmailSource.HARAKA, task_id="t-1")
    store.tasks.start(task.task_id)
    store.tasks.mark_completed(task.task_id, TaskCounters(fetched=5, saved=4, duplicate=1))
    store.dispose()
    result = cli("tasks", "list")
    assert result.code == 0
    row = next(line for line in result.out.splitlines() if "t-1" in line)
    assert "COMPLETED" in row and "HARAKA_EMAIL_FETCH" in row
    assert [c for c in row.split() if c.isdigit()][:4] == ["5", "4", "1", "0"]
    shown = cli("tasks", "show", "t-1")
    assert "RUNNING -> COMPLETED" in shown.out


def test_an_empty_list_says_so(cli: Run) -> None:
    assert cli("tasks", "list").out == "no tasks\n"
    assert json.loads(cli("tasks", "list", "--json").out) == []


def _failed_tasks(store_url: str, n: int) -> list[str]:
    store = MailStore(store_url)
    ids = []
    for _ in range(n):
        task = store.tasks.create(EmailSource.IMAP, status=TaskStatus.RUNNING)
        store.tasks.finish(task.task_id, error=LONG_ERROR)
        ids.append(task.task_id)
    store.dispose()
    return ids


def test_narrow_output_keeps_whole_ids_and_whole_errors(
    cli: Run, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (task_id,) = _failed_tasks(store_url, 1)
    wide = cli("tasks", "list")
    (row,) = [line for line in wide.out.splitlines() if "IMAP_EMAIL" in line]
    assert row.split()[:3] == [task_id, "IMAP_EMAIL_FETCH", "FAILED"]
    monkeypatch.setenv("COLUMNS", "60")
    narrow = cli("tasks", "list")
    assert narrow.code == 0 and "…" not in narrow.out
    listing, _, errors = narrow.out.partition("errors:\n")
    assert listing.splitlines()[0] == task_id  # a block per row: the whole ID first
    assert "state: FAILED" in listing and "fetched: 0" in listing
    assert " ".join(errors.split()) == f"{task_id}: {LONG_ERROR}"


def test_show_takes_a_unique_prefix_and_refuses_an_ambiguous_one(cli: Run, store_url: str) -> None:
    store = MailStore(store_url)
    for task_id in ("abc-1", "abc-2", "abd-3"):
        store.tasks.create(EmailSource.IMAP, task_id=task_id)
    store.dispose()
    assert "task abd-3:" in cli("tasks", "show", "abd").out
    assert "task abc-1:" in cli("tasks", "show", "abc-1").out
    ambiguous = cli("tasks", "show", "ab")
    assert ambiguous.code == 2
    lines = ambiguous.err.strip().splitlines()
    assert len(lines) == 1 and "matches 3 tasks" in lines[0] and "more characters" in lines[0]
    missing = cli("tasks", "show", "zz")
    assert missing.code == 2 and "no email task" in missing.err


def test_show_prints_times_with_their_zone_and_no_microseconds(cli: Run, store_url: str) -> None:
    (task_id,) = _failed_tasks(store_url, 1)
    shown = cli("tasks", "show", task_id[:8])
    assert shown.code == 0
    assert " UTC" in shown.out and "+00:00" not in shown.out
    assert not any("." in word and word[:4].isdigit() for word in shown.out.split()[:20])
    assert f"error: {LONG_ERROR}" in " ".join(shown.out.split())


def test_json_of_list_and_show(cli: Run, store_url: str) -> None:
    (task_id,) = _failed_tasks(store_url, 1)
    (row,) = json.loads(cli("tasks", "list", "--json").out)
    assert row["task_id"] == task_id and row["status"] == "FAILED" and row["error"] == LONG_ERROR
    for key in ("created_at", "completed_at", "heartbeat_at"):
        assert datetime.fromisoformat(row[key]).utcoffset() is not None
    shown = json.loads(cli("tasks", "show", task_id[:6], "--json").out)
    assert shown["task_id"] == task_id and shown["log"][0]["step"] == "create"
    assert json.loads(cli("tasks", "list", "--status", "completed", "--json").out) == []


def test_states_are_coloured_on_a_terminal_and_plain_in_a_pipe(
    cli: Run, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MailStore(store_url)
    failed = store.tasks.create(
        EmailSource.IMAP, task_id=f"f-{uuid.uuid4()}", status=TaskStatus.RUNNING
    )
    store.tasks.finish(failed.task_id, error="auth: login refused")
    done = store.tasks.create(EmailSource.HARAKA, status=TaskStatus.RUNNING)
    store.tasks.finish(done.task_id, message="ok")
    store.dispose()
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich's switch: as on a terminal
    coloured = cli("tasks", "list")
    assert "\x1b[1;31mFAILED" in coloured.out and "\x1b[32mCOMPLETED" in coloured.out
    env = clean_environ(MAIL_PIPELINE_DATABASE_URL=store_url, MAIL_PIPELINE_HOME=str(tmp_path))
    piped = run_installed("tasks", "list", cwd=tmp_path, env=env)
    assert piped.code == 0, piped.err
    assert "\x1b[" not in piped.out and "FAILED" in piped.out and "COMPLETED" in piped.out
    assert failed.task_id in piped.out  # one row per line in a pipe: the whole ID
