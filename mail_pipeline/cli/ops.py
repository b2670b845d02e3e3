"""Operator commands: metrics, health, cleanup (retention) and cleanup-stale.

``mail-pipeline health`` exits 0/1/2 (healthy/warning/critical) with one line of reasons, for
cron or a container health check. ``cleanup-stale`` is a top-level command (the ``tasks``
group belongs to :mod:`mail_pipeline.cli.tasks`). The ``mailbox`` and ``locks`` groups are
:mod:`mail_pipeline.cli.mailbox` and :mod:`mail_pipeline.cli.locks`.

The defaults shown in ``--help`` are written here, so that ``--help`` imports nothing of the
store; the tests check them against ``HealthThresholds``, ``RetentionPolicy`` and the metrics'
``DEFAULT_RECENT_RUNS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mail_pipeline.cli.common import (
    EXIT_OK,
    Context,
    emit_json,
    examples,
    new_table,
    pass_context,
    show_time,
    state_text,
)

if TYPE_CHECKING:
    from mail_pipeline.maintenance.metrics import Metrics

DEFAULT_RECENT_RUNS = 50
#: RetentionPolicy(): days each kind of record is kept (None: kept forever), and the rest.
RETENTION_DEFAULTS: dict[str, float | None] = {
    "completed_days": 1.0,
    "failed_days": 7.0,
    "cancelled_days": 1.0,
    "skipped_days": 1.0,
    "processed_days": 7.0,
    "failed_spool_days": 30.0,
    "unmatched_days": 30.0,
}
DEFAULT_GRACE_SECONDS = 3600.0
DEFAULT_CLEANUP_BATCH = 1000


if TYPE_CHECKING:  # click 8.2+ types ParamType by what it converts; at run time 8.1 is fine
    _ParamType = click.ParamType[float | str | None, Any]
else:
    _ParamType = click.ParamType


class Limit(_ParamType):
    """A number >= 0, or ``off``: None, or the string ``"off"`` with ``keep_off`` (for an
    option whose None means "not given")."""

    name = "N|off"

    def __init__(self, *, keep_off: bool = False, above_zero: bool = False) -> None:
        self.keep_off = keep_off
        self.above_zero = above_zero

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Return ``value`` as a float, or None for ``off``; fail on anything else."""
        if value is None or isinstance(value, float | int):
            return value
        text = str(value).strip().lower()
        if text == "off":
            return "off" if self.keep_off else None
        try:
            number = float(text)
        except ValueError:
            self.fail(f"{value!r} is not a number or 'off'", param, ctx)
        if number < 0 or (self.above_zero and number == 0):
            self.fail(f"{value} is not above 0 (write off to turn the check off)", param, ctx)
        return number


def _shown(default: float | None, unit: str = "") -> str:
    return "off" if default is None else f"{default:g}{unit}"


# --- metrics and health --------------------------------------------------------------------


def _metrics(ctx: Context, recent_runs: int = DEFAULT_RECENT_RUNS) -> Metrics:
    from mail_pipeline.maintenance.metrics import compute_metrics

    return compute_metrics(
        ctx.store,
        spool_dir=ctx.settings.spool_dir,
        recent_runs=recent_runs,
        window_hours=ctx.settings.metrics_window_hours,
    )


@click.command(
    "metrics",
    epilog=examples("mail-pipeline metrics", "mail-pipeline metrics --json | jq .metrics"),
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead.")
@click.option(
    "--recent-runs",
    type=click.IntRange(min=1),
    default=DEFAULT_RECENT_RUNS,
    show_default=True,
    help="Throughput over this many recent completed runs.",
)
@pass_context
def show_metrics(ctx: Context, as_json: bool, recent_runs: int) -> int:
    """Show task, throughput, spool and mailbox metrics.

    The same numbers the `mail_metrics` asset records on every fetch run.
    """
    metrics = _metrics(ctx, recent_runs)
    if as_json:
        emit_json(metrics.as_dict())
        return EXIT_OK
    numbers = metrics.numeric()
    tasks = new_table(
        "tasks", "count", numbers=("count",), title=f"metrics at {show_time(metrics.generated_at)}"
    )
    for key, label in (
        ("total_tasks", "total"),
        ("pending_tasks", "pending"),
        ("running_tasks", "running"),
        ("timeout_tasks", "stale (no heartbeat)"),
        ("completed_tasks", "completed"),
        ("failed_tasks", "failed"),
        ("recent_failed_tasks", "failed in the last hour"),
        ("failed_tasks_24h", f"failed in the last {metrics.window_hours} h"),
        ("cancelled_tasks", "cancelled"),
        ("skipped_tasks", "skipped"),
        ("duplicates_24h", f"duplicates in the last {metrics.window_hours} h"),
        ("audited_tasks", "deleted by retention (audited)"),
    ):
        tasks.add_row(label, str(numbers[key]))
    ctx.print_table(tasks, "no tasks")
    runs = new_table(
        "source",
        "runs",
        "saved/run",
        "seconds/run",
        "duplicates",
        "failures",
        numbers=("runs", "saved/run", "seconds/run", "duplicates", "failures"),
        title=f"throughput over the last {recent_runs} completed runs",
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
    ctx.print_table(runs, "no completed runs yet")
    if metrics.spool is not None:
        s = metrics.spool
        age = "-" if s.oldest_inbox_age_seconds is None else f"{s.oldest_inbox_age_seconds:.0f} s"
        ctx.say(
            f"spool: {s.inbox_ready} ready in inbox (oldest file {age}), "
            f"{s.failed} failed, {s.unmatched} unmatched"
        )
    from mail_pipeline.cli.mailbox import print_mailboxes

    print_mailboxes(ctx, metrics.mailboxes)
    return EXIT_OK


#: ``health`` options: (flag, HealthThresholds field, the setting it overrides, meaning)
HEALTH_OPTIONS = (
    (
        "--failed-tasks",
        "failed_tasks_warning",
        "MAIL_PIPELINE_HEALTH_FAILED_TASKS",
        "warning from N FAILED tasks in the window (MAIL_PIPELINE_METRICS_WINDOW_HOURS)",
    ),
    (
        "--timed-out",
        "stale_tasks_warning",
        "MAIL_PIPELINE_HEALTH_STALE_TASKS",
        "warning from N stale open tasks",
    ),
    (
        "--missed-fetches",
        "missed_fetches_critical",
        "MAIL_PIPELINE_HEALTH_MISSED_FETCHES",
        "critical when no mailbox fetch succeeded for N fetch intervals",
    ),
    (
        "--inbox-age",
        "spool_warning_seconds",
        "MAIL_PIPELINE_HEALTH_SPOOL_WARNING_SECONDS",
        "warning when the oldest spool inbox file is older than N seconds",
    ),
    (
        "--inbox-age-critical",
        "spool_critical_seconds",
        "MAIL_PIPELINE_HEALTH_SPOOL_CRITICAL_SECONDS",
        "critical when the oldest spool inbox file is older than N seconds",
    ),
    (
        "--spool-failed",
        "spool_failed_warning",
        "MAIL_PIPELINE_HEALTH_SPOOL_FAILED",
        "warning from N messages in failed/",
    ),
)


def _health_options(function: Any) -> Any:
    for flag, field, setting, meaning in reversed(HEALTH_OPTIONS):
        function = click.option(
            flag,
            field,
            type=Limit(keep_off=True, above_zero=True),
            default=None,
            help=f"{meaning[0].upper()}{meaning[1:]}; off turns it off (default: {setting}).",
        )(function)
    return function


@click.command(
    "health",
    epilog=examples(
        "mail-pipeline health", "mail-pipeline health --inbox-age 600 --failed-tasks off --json"
    ),
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead.")
@_health_options
@pass_context
def check_health(ctx: Context, /, as_json: bool, **limits: float | str | None) -> int:
    """One line of health; exit 0 healthy, 1 warning, 2 critical.

    For cron or a container health check. The limits come from the health threshold
    settings (deploy/README.md, "Health thresholds"); an option overrides one for this check.
    """
    import dataclasses

    from mail_pipeline.maintenance.health import HealthThresholds, evaluate

    thresholds = HealthThresholds.from_settings(ctx.settings)
    given: dict[str, Any] = {}
    for field, value in limits.items():
        if value is None:
            continue
        if value == "off":
            given[field] = None
        elif field.endswith("_seconds"):
            given[field] = float(value)
        else:
            given[field] = int(float(value))
    report = evaluate(_metrics(ctx), dataclasses.replace(thresholds, **given))
    if as_json:
        emit_json(report.as_dict())
    else:
        ctx.say(state_text(report.message()))
    return int(report.status)


# --- retention and stale tasks -------------------------------------------------------------


def _retention_options(function: Any) -> Any:
    for flag, key, what in reversed(
        (
            ("--completed-days", "completed_days", "COMPLETED tasks"),
            ("--failed-days", "failed_days", "FAILED tasks"),
            ("--cancelled-days", "cancelled_days", "CANCELLED tasks"),
            ("--skipped-days", "skipped_days", "SKIPPED tasks"),
            ("--processed-days", "processed_days", "spool processed/ files"),
            ("--failed-spool-days", "failed_spool_days", "spool failed/ messages"),
            ("--unmatched-days", "unmatched_days", "spool unmatched/ messages"),
        )
    ):
        default = RETENTION_DEFAULTS[key]
        function = click.option(
            flag,
            key,
            type=Limit(),
            default=default,
            metavar="DAYS|off",
            help=f"Keep {what} this long (default {_shown(default)}).",
        )(function)
    return function


@click.command(
    "cleanup",
    epilog=examples(
        "mail-pipeline cleanup --dry-run", "mail-pipeline cleanup --failed-days 30 --json"
    ),
)
@click.option("--dry-run", is_flag=True, help="Report what would go; delete nothing.")
@_retention_options
@click.option(
    "--attachment-grace-seconds",
    type=click.FloatRange(min=0),
    default=DEFAULT_GRACE_SECONDS,
    show_default=True,
    help="Never remove an unreferenced attachment file younger than this.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=DEFAULT_CLEANUP_BATCH,
    show_default=True,
    help="Tasks deleted per transaction.",
)
@click.option(
    "--max-batches",
    type=click.IntRange(min=1),
    help="Stop after this many batches (the rest waits for the next pass).",
)
@click.option("--no-spool", is_flag=True, help="Leave the spool alone.")
@click.option("--no-attachments", is_flag=True, help="Leave attachment files alone.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_context
def cleanup(
    ctx: Context,
    /,
    dry_run: bool,
    attachment_grace_seconds: float,
    batch_size: int,
    max_batches: int | None,
    no_spool: bool,
    no_attachments: bool,
    as_json: bool,
    **days: float | None,
) -> int:
    """Apply retention: old tasks, spool files, attachments.

    Deletes finished tasks past their time (an audit row is kept for each), old spool files,
    and attachment files no message refers to.
    """
    from mail_pipeline.maintenance.retention import run_retention
    from mail_pipeline.maintenance.retention_policy import RetentionPolicy

    policy = RetentionPolicy(
        **days,
        attachment_grace_seconds=attachment_grace_seconds,
        batch_size=batch_size,
    )
    report = run_retention(
        ctx.store,
        policy,
        spool_dir=None if no_spool else ctx.settings.spool_dir,
        attachment_root=None if no_attachments else ctx.settings.attachment_root,
        dry_run=dry_run,
        max_batches=max_batches,
    )
    if as_json:
        emit_json(report.as_dict())
        return EXIT_OK
    ctx.say(report.summary())
    if dry_run:
        for part in (report.processed, report.failed_spool, report.unmatched, report.attachments):
            for path in part.paths[:20]:
                ctx.say(f"  would delete {path}")
    return EXIT_OK


@click.command("cleanup-stale", epilog=examples("mail-pipeline cleanup-stale"))
@pass_context
def cleanup_stale(ctx: Context) -> int:
    """Cancel tasks whose heartbeat expired (their run died).

    Cancels the PENDING and RUNNING tasks whose heartbeat is older than their timeout and
    frees those runs' fetch leases. Tasks of live runs are left alone.
    """
    from mail_pipeline.maintenance.stale_tasks import cleanup_stale_tasks

    report = cleanup_stale_tasks(ctx.store)
    ctx.say(
        f"cancelled {report.count} stale task(s), kept {report.kept} open "
        "(stale: no heartbeat within the task's timeout)"
    )
    for task_id, reason in report.cancelled:
        ctx.say(f"  {task_id}: {reason}")
    for run_id in report.released_runs:
        ctx.say(f"  released the lease(s) of run {run_id}")
    return EXIT_OK


def register(root: click.Group) -> None:
    """Add the operator commands to ``root``."""
    for command in (show_metrics, check_health, cleanup, cleanup_stale):
        root.add_command(command)
