"""``mail-pipeline tasks``: the EmailTask records."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from rich.table import Table

from mail_pipeline.cli.common import EXIT_OK, Context, command, group
from mail_pipeline.storage.store import EmailSource, TaskStatus


def register(groups: Any) -> None:
    """Add the ``tasks`` commands."""
    sub = group(groups, "tasks", "fetch task records")
    lst = command(sub, "list", list_tasks, "list recent tasks: state, counters, age")
    lst.add_argument("--status", choices=[s.value for s in TaskStatus])
    lst.add_argument("--source", choices=[s.value for s in EmailSource])
    lst.add_argument("--limit", type=int, default=20)
    show = command(sub, "show", show_task, "show one task with its execution log")
    show.add_argument("task_id")


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def list_tasks(ctx: Context, args: argparse.Namespace) -> int:
    """Print recent tasks."""
    if args.limit <= 0:
        raise ValueError("--limit must be positive")
    now = ctx.store.clock()
    table = Table("task", "source", "status", "fetched", "saved", "dup", "failed", "age", "error")
    for task in ctx.store.tasks.recent(status=args.status, source=args.source, limit=args.limit):
        flag = " (stale)" if task.is_stale(now) else ""
        c = task.counters
        table.add_row(
            task.task_id,
            task.email_source.value,
            task.status.value + flag,
            str(c.fetched),
            str(c.saved),
            str(c.duplicate),
            str(c.failed),
            _age(task.age(now)),
            task.error_message[:60],
        )
    ctx.out.print(table)
    return EXIT_OK


def show_task(ctx: Context, args: argparse.Namespace) -> int:
    """Print one task and its execution log."""
    task = ctx.store.tasks.get(args.task_id)
    c = task.counters
    ctx.out.print(f"task {task.task_id}: {task.email_source.value} {task.status.value}")
    ctx.out.print(f"  run: {task.run_id or '-'}  created: {task.created_at.isoformat()}")
    ctx.out.print(
        f"  heartbeat: {task.heartbeat_at.isoformat()} (stale after "
        f"{task.timeout_seconds} s without one)"
    )
    ctx.out.print(
        f"  fetched {c.fetched}, saved {c.saved}, duplicates {c.duplicate}, failed {c.failed}"
    )
    if task.error_message:
        ctx.out.print(f"  error: {task.error_message}")
    for entry in task.log:
        ctx.out.print(
            f"  {entry['timestamp']} {entry['level']:<7} {entry['step']}: {entry['message']}",
            markup=False,
        )
    return EXIT_OK
