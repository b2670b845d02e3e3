"""``mail-pipeline tasks``: the EmailTask records, listed and shown (by ID or a unique prefix)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from mail_pipeline.cli.common import (
    EXIT_OK,
    Context,
    UsageError,
    emit_json,
    group,
    iso_time,
    json_option,
    new_table,
    pass_context,
    show_time,
    state_text,
)

if TYPE_CHECKING:
    from datetime import datetime

    from mail_pipeline.storage.store import MailStore, TaskSnapshot

#: The task states and sources, as ``--status`` and ``--source`` take them (the values of
#: :class:`~mail_pipeline.storage.store.TaskStatus` and ``EmailSource``; checked by the tests).
STATUSES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "SKIPPED")
SOURCES = ("IMAP_EMAIL_FETCH", "HARAKA_EMAIL_FETCH")


@group(
    "tasks",
    "mail-pipeline tasks list --status FAILED",
    "mail-pipeline tasks show 98745d75",
    "mail-pipeline tasks show 98745d75 --json",
)
def tasks() -> None:
    """The fetch task records: state, counters, log.

    One task is recorded per IMAP fetch or spool ingest, with its state, its counters and its
    execution log.
    """


def _age(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def find_task(store: MailStore, text: str) -> TaskSnapshot:
    """Return the task whose ID is ``text``, or the one task whose ID starts with it.

    Raises:
        UsageError: no task, or several, match (the line names up to three of them).
    """
    from mail_pipeline.errors import NotFoundError

    prefix = text.strip()
    if not prefix:
        raise UsageError("give a task ID (or the start of one)")
    try:
        return store.tasks.get(prefix)
    except NotFoundError:
        pass
    total, found = store.tasks.with_prefix(prefix, limit=3)
    if not found:
        raise UsageError(
            f"no email task with an ID starting {prefix!r} (see mail-pipeline tasks list)"
        )
    if total > 1:
        shown = ", ".join(t.task_id for t in found) + (", ..." if total > len(found) else "")
        raise UsageError(
            f"task ID prefix {prefix!r} matches {total} tasks ({shown}): give more characters"
        )
    return found[0]


def task_json(task: TaskSnapshot, now: datetime, *, log: bool = False) -> dict[str, Any]:
    """Return ``task`` as a JSON-ready dict (timestamps ISO 8601 with their zone)."""
    c = task.counters
    data: dict[str, Any] = {
        "task_id": task.task_id,
        "source": task.email_source.value,
        "status": task.status.value,
        "stale": task.is_stale(now),
        "run_id": task.run_id,
        "user_id": task.user_id,
        "created_at": iso_time(task.created_at),
        "started_at": iso_time(task.started_at),
        "completed_at": iso_time(task.completed_at),
        "heartbeat_at": iso_time(task.heartbeat_at),
        "timeout_seconds": task.timeout_seconds,
        "counters": {
            "fetched": c.fetched,
            "saved": c.saved,
            "duplicate": c.duplicate,
            "failed": c.failed,
        },
        "error": task.error_message,
    }
    if log:
        data["log"] = task.log
    return data


@tasks.command("list", short_help="List recent tasks, newest first.")
@click.option(
    "--status", type=click.Choice(STATUSES, case_sensitive=False), help="Only this state."
)
@click.option(
    "--source", type=click.Choice(SOURCES, case_sensitive=False), help="Only this source."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Show at most this many tasks, newest first.",
)
@json_option
@pass_context
def list_tasks(
    ctx: Context, status: str | None, source: str | None, limit: int, as_json: bool
) -> int:
    """List recent tasks, newest first: source, state, counters and age, then the error of
    each task that has one. `mail-pipeline tasks show` takes an ID or its first characters
    (on a narrow terminal a long ID folds: its first line is such a prefix)."""
    store = ctx.store
    now = store.clock()
    found = store.tasks.recent(
        status=status.upper() if status else None,
        source=source.upper() if source else None,
        limit=limit,
    )
    if as_json:
        emit_json([task_json(task, now) for task in found])
        return EXIT_OK
    table = new_table(
        "task",
        "source",
        "state",
        "fetched",
        "saved",
        "dup",
        "failed",
        "age",
        numbers=("fetched", "saved", "dup", "failed", "age"),
    )
    for task in found:
        flag = " (stale)" if task.is_stale(now) else ""
        c = task.counters
        table.add_row(
            task.task_id,
            task.email_source.value,
            state_text(task.status.value + flag),
            str(c.fetched),
            str(c.saved),
            str(c.duplicate),
            str(c.failed),
            _age(task.age(now)),
        )
    ctx.print_table(table, "no tasks")
    failed = [task for task in found if task.error_message]
    if failed:
        ctx.say("errors:")
        for task in failed:
            ctx.say(f"  {task.task_id}: {' '.join(task.error_message.split())}")
    return EXIT_OK


@tasks.command("show", short_help="Show one task and its execution log.")
@click.argument("task_id")
@json_option
@pass_context
def show_task(ctx: Context, task_id: str, as_json: bool) -> int:
    """Show the task TASK_ID (or the one task whose ID starts with it) and its execution
    log."""
    from rich.text import Text

    store = ctx.store
    task = find_task(store, task_id)
    if as_json:
        emit_json(task_json(task, store.clock(), log=True))
        return EXIT_OK
    c = task.counters
    line = Text(f"task {task.task_id}: {task.email_source.value} ")
    line.append_text(state_text(task.status.value))
    ctx.say(line)
    ctx.say(f"  run: {task.run_id or '-'}  created: {show_time(task.created_at)}")
    ctx.say(
        f"  heartbeat: {show_time(task.heartbeat_at)} (stale after "
        f"{task.timeout_seconds} s without one)"
    )
    ctx.say(f"  fetched {c.fetched}, saved {c.saved}, duplicates {c.duplicate}, failed {c.failed}")
    if task.error_message:
        ctx.say(f"  error: {task.error_message}")
    for entry in task.log:
        ctx.say(
            f"  {show_time(entry.get('timestamp'))} {entry.get('level', ''):<7} "
            f"{entry.get('step', '')}: {entry.get('message', '')}"
        )
    return EXIT_OK


def register(root: click.Group) -> None:
    """Add the ``tasks`` group to ``root``."""
    root.add_command(tasks)
