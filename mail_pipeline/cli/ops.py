"""Operator commands: metrics, health, cleanup (retention) and cleanup-stale.

``mail-pipeline health`` exits 0/1/2 (healthy/warning/critical) with one line of reasons, for
cron or a container health check. ``cleanup-stale`` is a top-level command (the ``tasks``
group belongs to :mod:`mail_pipeline.cli.tasks`). The ``mailbox`` and ``locks`` groups are
:mod:`mail_pipeline.cli.mailbox` and :mod:`mail_pipeline.cli.locks`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.table import Table

from mail_pipeline.cli.common import EXIT_OK, Context, command, positive_int, show_time
from mail_pipeline.cli.mailbox import mailbox_table
from mail_pipeline.maintenance.health import HealthThresholds, evaluate
from mail_pipeline.maintenance.metrics import DEFAULT_RECENT_RUNS, Metrics, compute_metrics
from mail_pipeline.maintenance.retention import run_retention
from mail_pipeline.maintenance.retention_policy import DEFAULT_BATCH_SIZE, RetentionPolicy
from mail_pipeline.maintenance.stale_tasks import cleanup_stale_tasks


def register(groups: Any) -> None:
    """Add the operator commands."""
    m = command(
        groups,
        "metrics",
        show_metrics,
        "task, throughput, spool and mailbox metrics (a table, or --json)",
    )
    m.add_argument("--json", action="store_true", help="print JSON for machines")
    m.add_argument(
        "--recent-runs",
        type=positive_int,
        default=DEFAULT_RECENT_RUNS,
        help=f"throughput over this many recent runs (default {DEFAULT_RECENT_RUNS})",
    )

    h = command(
        groups,
        "health",
        check_health,
        "exit 0 healthy, 1 warning, 2 critical, with one line of reasons",
    )
    h.add_argument("--json", action="store_true", help="print JSON for machines")
    d = HealthThresholds()
    h.add_argument(
        "--max-failed-24h",
        type=_limit,
        default=d.failed_24h_critical,
        metavar="N|off",
        help=f"critical above N failed tasks in 24 h (default {d.failed_24h_critical})",
    )
    h.add_argument(
        "--timed-out",
        type=_limit,
        default=d.timed_out_warning,
        metavar="N|off",
        help="warning from N stale tasks: no heartbeat within their timeout (default 1)",
    )
    h.add_argument(
        "--paused",
        type=_limit,
        default=d.paused_warning,
        metavar="N|off",
        help="warning from N paused mailboxes (default 1)",
    )
    h.add_argument(
        "--inbox-age",
        type=_limit,
        default=d.inbox_age_warning_seconds,
        metavar="SECONDS|off",
        help="warning when the oldest spool inbox file is older (default 1800)",
    )
    h.add_argument(
        "--spool-failed",
        type=_limit,
        default=d.spool_failed_warning,
        metavar="N|off",
        help="warning from N messages in spool failed/ (default off)",
    )

    c = command(
        groups,
        "cleanup",
        cleanup,
        "retention: delete old finished tasks (audited), old spool files and "
        "unreferenced attachment files",
    )
    c.add_argument("--dry-run", action="store_true", help="report what would go; delete nothing")
    p = RetentionPolicy()
    for flag, default, text in (
        ("--completed-days", p.completed_days, "COMPLETED tasks"),
        ("--failed-days", p.failed_days, "FAILED tasks"),
        ("--cancelled-days", p.cancelled_days, "CANCELLED tasks"),
        ("--skipped-days", p.skipped_days, "SKIPPED tasks"),
        ("--processed-days", p.processed_days, "spool processed/ files"),
        ("--failed-spool-days", p.failed_spool_days, "spool failed/ messages"),
        ("--unmatched-days", p.unmatched_days, "spool unmatched/ messages"),
    ):
        c.add_argument(
            flag,
            type=_days,
            default=default,
            metavar="DAYS|off",
            help=f"keep {text} this long (default {default:g})",
        )
    c.add_argument(
        "--attachment-grace-seconds",
        type=float,
        default=p.attachment_grace_seconds,
        help="never remove an unreferenced file younger than this (default 3600)",
    )
    c.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"tasks per transaction (default {DEFAULT_BATCH_SIZE})",
    )
    c.add_argument(
        "--max-batches",
        type=positive_int,
        default=None,
        help="stop after this many batches (the rest waits for the next pass)",
    )
    c.add_argument("--no-spool", action="store_true", help="leave the spool alone")
    c.add_argument("--no-attachments", action="store_true", help="leave attachments alone")
    c.add_argument("--json", action="store_true", help="print the report as JSON")

    command(
        groups,
        "cleanup-stale",
        cleanup_stale,
        "cancel PENDING/RUNNING tasks whose heartbeat is older than their timeout "
        "(their run is dead) and free those runs' leases",
    )


# --- argument types ------------------------------------------------------------------------


def _limit(text: str) -> float | None:
    if text.strip().lower() == "off":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'off'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _days(text: str) -> float | None:
    return _limit(text)


def _json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# --- metrics and health --------------------------------------------------------------------


def _metrics(ctx: Context, recent_runs: int = DEFAULT_RECENT_RUNS) -> Metrics:
    return compute_metrics(ctx.store, spool_dir=ctx.settings.spool_dir, recent_runs=recent_runs)


def show_metrics(ctx: Context, args: argparse.Namespace) -> int:
    """Print the metrics as tables, or as JSON."""
    metrics = _metrics(ctx, args.recent_runs)
    if args.json:
        _json(metrics.as_dict())
        return EXIT_OK
    numbers = metrics.numeric()
    tasks = Table(
        "tasks", "count", title=f"mail_pipeline metrics at {show_time(metrics.generated_at)}"
    )
    for key, label in (
        ("total_tasks", "total"),
        ("pending_tasks", "pending"),
        ("running_tasks", "running"),
        ("timeout_tasks", "stale (no heartbeat)"),
        ("completed_tasks", "completed"),
        ("failed_tasks", "failed"),
        ("recent_failed_tasks", "failed in the last hour"),
        ("failed_tasks_24h", "failed in the last 24 h"),
        ("cancelled_tasks", "cancelled"),
        ("skipped_tasks", "skipped"),
        ("duplicates_24h", "duplicates in the last 24 h"),
        ("audited_tasks", "deleted by retention (audited)"),
    ):
        tasks.add_row(label, str(numbers[key]))
    ctx.out.print(tasks)
    runs = Table(
        "source",
        "runs",
        "saved/run",
        "seconds/run",
        "duplicates",
        "failures",
        title=f"throughput over the last {args.recent_runs} completed runs",
    )
    for source, stats in metrics.throughput.items():
        runs.add_row(
            source,
            str(stats.runs),
            f"{stats.saved_per_run:.1f}",
            f"{stats.seconds_per_run:.2f}",
            str(stats.duplicates),
            str(stats.failures),
        )
    ctx.out.print(runs)
    if metrics.spool is not None:
        s = metrics.spool
        age = "-" if s.oldest_inbox_age_seconds is None else f"{s.oldest_inbox_age_seconds:.0f} s"
        ctx.out.print(
            f"spool: {s.inbox_ready} ready in inbox (oldest file {age}), "
            f"{s.failed} failed, {s.unmatched} unmatched",
            markup=False,
            highlight=False,
        )
    ctx.out.print(mailbox_table(metrics.mailboxes))
    return EXIT_OK


def check_health(ctx: Context, args: argparse.Namespace) -> int:
    """Print one line of health and exit 0/1/2."""

    def count(value: float | None) -> int | None:
        return None if value is None else int(value)

    thresholds = HealthThresholds(
        timed_out_warning=count(args.timed_out),
        failed_24h_critical=count(args.max_failed_24h),
        paused_warning=count(args.paused),
        inbox_age_warning_seconds=args.inbox_age,
        spool_failed_warning=count(args.spool_failed),
    )
    report = evaluate(_metrics(ctx), thresholds)
    if args.json:
        _json(
            {
                "level": report.level.label,
                "exit_code": int(report.level),
                "reasons": [{"level": lvl.label, "reason": text} for lvl, text in report.reasons],
            }
        )
    else:
        sys.stdout.write(
            f"{report.level.label.upper()}: {report.line()}\n" if report.reasons else "HEALTHY\n"
        )
    return int(report.level)


# --- retention and stale tasks -------------------------------------------------------------


def cleanup(ctx: Context, args: argparse.Namespace) -> int:
    """Run (or dry-run) retention and print what went."""
    policy = RetentionPolicy(
        completed_days=args.completed_days,
        failed_days=args.failed_days,
        cancelled_days=args.cancelled_days,
        skipped_days=args.skipped_days,
        processed_days=args.processed_days,
        failed_spool_days=args.failed_spool_days,
        unmatched_days=args.unmatched_days,
        attachment_grace_seconds=args.attachment_grace_seconds,
        batch_size=args.batch_size,
    )
    report = run_retention(
        ctx.store,
        policy,
        spool_dir=None if args.no_spool else ctx.settings.spool_dir,
        attachment_root=None if args.no_attachments else ctx.settings.attachment_root,
        dry_run=args.dry_run,
        max_batches=args.max_batches,
    )
    if args.json:
        _json(report.as_dict())
    else:
        ctx.out.print(report.summary(), markup=False, highlight=False)
        if args.dry_run:
            for part in (
                report.processed,
                report.failed_spool,
                report.unmatched,
                report.attachments,
            ):
                for path in part.paths[:20]:
                    ctx.out.print(f"  would delete {path}", markup=False, highlight=False)
    return EXIT_OK


def cleanup_stale(ctx: Context, _args: argparse.Namespace) -> int:
    """Cancel open tasks whose heartbeat is older than their timeout; free their runs' leases.

    Needs no Dagster instance: the heartbeat alone decides (see
    :mod:`mail_pipeline.maintenance.stale_tasks`).
    """
    report = cleanup_stale_tasks(ctx.store)
    ctx.out.print(
        f"cancelled {report.count} stale task(s), kept {report.kept} open "
        "(stale: no heartbeat within the task's timeout)",
        markup=False,
        highlight=False,
    )
    for task_id, reason in report.cancelled:
        ctx.out.print(f"  {task_id}: {reason}", markup=False, highlight=False)
    for run_id in report.released_runs:
        ctx.out.print(f"  released the lease(s) of run {run_id}", markup=False, highlight=False)
    return EXIT_OK
