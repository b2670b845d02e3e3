"""``mail-pipeline tasks list|show``."""

from __future__ import annotations

from mail_pipeline_tests.cli.conftest import Run


def test_tasks_list_shows_state_counters_and_age(cli: Run, store_url: str) -> None:
    from mail_pipeline.storage.store import EmailSource, MailStore, TaskCounters

    store = MailStore(store_url)
    task = store.tasks.create(EmailSource.HARAKA, task_id="t-1")
    store.tasks.start(task.task_id)
    store.tasks.mark_completed(task.task_id, TaskCounters(fetched=5, saved=4, duplicate=1))
    store.dispose()
    result = cli("tasks", "list")
    assert result.code == 0
    row = next(line for line in result.out.splitlines() if "t-1" in line)
    assert "COMPLETED" in row and "HARAKA_EMAIL_FETCH" in row
    assert [c for c in row.replace("│", " ").split() if c.isdigit()][:4] == ["5", "4", "1", "0"]
    shown = cli("tasks", "show", "t-1")
    assert "RUNNING -> COMPLETED" in shown.out
