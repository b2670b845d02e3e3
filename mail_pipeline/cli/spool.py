"""``mail-pipeline spool``: ingest the Haraka spool, show its status, requeue quarantined mail."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mail_pipeline.cli.common import EXIT_FAILED, EXIT_OK, Context, command, group
from mail_pipeline.intake.spool.ingest import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_SIZE,
    IngestResult,
    SpoolIngestService,
)
from mail_pipeline.intake.spool.records import Problem


def register(groups: Any) -> None:
    """Add the ``spool`` commands."""
    sub = group(groups, "spool", "the Haraka spool directory")
    ingest = command(
        sub, "ingest", ingest_spool, "store every ready message of the spool inbox (one pass)"
    )
    ingest.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"messages per database transaction (default {DEFAULT_BATCH_SIZE})",
    )
    ingest.add_argument(
        "--max-size",
        type=int,
        default=DEFAULT_MAX_SIZE,
        metavar="BYTES",
        help=f"larger messages go to failed/ (default {DEFAULT_MAX_SIZE})",
    )
    command(sub, "status", spool_status, "counts per folder and what needs attention")
    command(sub, "retry-failed", retry_failed, "move failed/ pairs back into the inbox")
    command(
        sub,
        "reingest-unmatched",
        reingest_unmatched,
        "move unmatched/ pairs back into the inbox (after adding a user or an alias)",
    )


def _service(ctx: Context, args: argparse.Namespace | None = None) -> SpoolIngestService:
    batch = getattr(args, "batch_size", DEFAULT_BATCH_SIZE)
    max_size = getattr(args, "max_size", DEFAULT_MAX_SIZE)
    if batch <= 0:
        raise ValueError("--batch-size must be positive")
    if max_size <= 0:
        raise ValueError("--max-size must be positive")
    return SpoolIngestService(
        ctx.store,
        ctx.settings.spool_dir,
        ctx.settings.attachment_root,
        batch_size=batch,
        max_size=max_size,
    )


def ingest_spool(ctx: Context, args: argparse.Namespace) -> int:
    """One ingest pass in a HARAKA_EMAIL_FETCH task; exit 1 if the pass failed."""
    service = _service(ctx, args)
    spool = service.spool.open()
    try:
        if sys.stdout.isatty():
            total = spool.status().inbox_ready
            with Progress(
                TextColumn("ingest"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=ctx.out,
                transient=True,
            ) as bar:
                job = bar.add_task("ingest", total=total or None)

                def show(result: IngestResult) -> None:
                    bar.update(job, completed=result.found, total=max(total, result.found) or None)

                result = service.ingest_as_task(progress=show)
        else:
            result = service.ingest_as_task()
    except Exception as exc:
        ctx.err.print(
            f"spool ingest failed: {type(exc).__name__}: {exc}", markup=False, highlight=False
        )
        return EXIT_FAILED
    ctx.out.print(
        f"spool ingest: {result.summary()} ({result.duration_seconds:.1f} s, "
        f"task {result.task_id})",
        markup=False,
        highlight=False,
    )
    for problem in result.problems[:20]:
        ctx.out.print(
            f"  {problem.reason}: {os.path.basename(problem.path)} {problem.detail}",
            markup=False,
            highlight=False,
        )
    if len(result.problems) > 20 or result.problems_dropped:
        more = len(result.problems) - 20 + result.problems_dropped
        ctx.out.print(f"  ... and {more} more", markup=False)
    return EXIT_OK


def spool_status(ctx: Context, _args: argparse.Namespace) -> int:
    """Print the spool's counts and what needs attention."""
    status = SpoolIngestService(
        ctx.store, ctx.settings.spool_dir, ctx.settings.attachment_root
    ).status()
    table = Table("folder", "pairs")
    table.add_row("inbox (ready)", str(status.inbox_ready))
    table.add_row("inbox (.eml without .meta)", str(status.inbox_waiting))
    table.add_row("processed", str(status.processed))
    table.add_row("failed", str(status.failed))
    table.add_row("unmatched", str(status.unmatched))
    table.add_row("claims (folders)", str(status.claims))
    ctx.out.print(f"spool {ctx.settings.spool_dir}", markup=False, highlight=False)
    ctx.out.print(table)
    age = status.oldest_inbox_age_seconds
    ctx.out.print(f"oldest inbox file: {'-' if age is None else f'{age:.0f} s'}")
    for label, names in (
        ("stale claim", status.stale_claims),
        ("stale .eml without .meta", status.stale_eml_without_meta),
        ("refused (not a regular file)", status.refused),
    ):
        for name in names:
            ctx.out.print(f"{label}: {name}", markup=False, highlight=False)
    return EXIT_OK


def retry_failed(ctx: Context, _args: argparse.Namespace) -> int:
    """Move failed/ pairs back into the inbox."""
    return _report_requeue(ctx, "failed", *_service(ctx).retry_failed())


def reingest_unmatched(ctx: Context, _args: argparse.Namespace) -> int:
    """Move unmatched/ pairs back into the inbox."""
    return _report_requeue(ctx, "unmatched", *_service(ctx).reingest_unmatched())


def _report_requeue(ctx: Context, folder: str, moved: int, problems: list[Problem]) -> int:
    ctx.out.print(f"moved {moved} {folder} pairs back to the inbox")
    for problem in problems:
        ctx.out.print(f"  left {problem.path}: {problem.reason}", markup=False, highlight=False)
    return EXIT_OK
