"""``mail-pipeline spool``: ingest the Haraka spool, show its status, requeue quarantined mail."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from mail_pipeline.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Context,
    emit_json,
    group,
    json_option,
    new_table,
    pass_context,
)

if TYPE_CHECKING:
    from mail_pipeline.intake.spool.ingest import IngestResult, SpoolIngestService
    from mail_pipeline.intake.spool.records import Problem

#: The spool service's defaults (mail_pipeline.intake.spool.ingest; the tests check they match).
DEFAULT_BATCH_SIZE = 200
DEFAULT_MAX_SIZE = 26214400


@group(
    "spool",
    "mail-pipeline spool status",
    "mail-pipeline spool ingest",
    "mail-pipeline spool reingest-unmatched",
)
def spool() -> None:
    """The spool Haraka writes accepted mail to.

    Its folders: inbox/ (waiting), processed/, failed/ (quarantined, with the reason) and
    unmatched/ (no user for the recipient).
    """


def _service(
    ctx: Context, batch_size: int = DEFAULT_BATCH_SIZE, max_size: int = DEFAULT_MAX_SIZE
) -> SpoolIngestService:
    from mail_pipeline.intake.spool.ingest import SpoolIngestService

    return SpoolIngestService(
        ctx.store,
        ctx.settings.spool_dir,
        ctx.settings.attachment_root,
        batch_size=batch_size,
        max_size=max_size,
    )


@spool.command("ingest", short_help="Store the spool inbox's messages (one pass).")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Messages per database transaction.",
)
@click.option(
    "--max-size",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_SIZE,
    show_default=True,
    metavar="BYTES",
    help="Larger messages go to failed/.",
)
@pass_context
def ingest_spool(ctx: Context, batch_size: int, max_size: int) -> int:
    """Store every ready message of the spool's inbox (one pass, recorded as a
    HARAKA_EMAIL_FETCH task). Exit 1 when the pass failed: the files stay in the inbox for
    the next one."""
    service = _service(ctx, batch_size, max_size)
    service.spool.open()
    try:
        if ctx.out.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            total = service.spool.status().inbox_ready
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
        ctx.warn(f"spool ingest failed: {type(exc).__name__}: {exc}")
        return EXIT_FAILED
    ctx.say(
        f"spool ingest: {result.summary()} ({result.duration_seconds:.1f} s, task {result.task_id})"
    )
    for problem in result.problems[:20]:
        detail = problem.detail
        ctx.say(f"  {problem.reason}: {os.path.basename(problem.path)} {detail}")
    if len(result.problems) > 20 or result.problems_dropped:
        more = len(result.problems) - 20 + result.problems_dropped
        ctx.say(f"  ... and {more} more")
    return EXIT_OK


@spool.command("status", short_help="Counts per spool folder, and what needs attention.")
@json_option
@pass_context
def spool_status(ctx: Context, as_json: bool) -> int:
    """Show the pairs (.eml + .meta) in each spool folder, the oldest inbox file, and what
    needs attention (stale claims, files without .meta, refused files)."""
    status = _service(ctx).status()
    if as_json:
        emit_json({"spool_dir": ctx.settings.spool_dir, **status.as_dict()})
        return EXIT_OK
    table = new_table("folder", "pairs")
    table.add_row("inbox (ready)", str(status.inbox_ready))
    table.add_row("inbox (.eml without .meta)", str(status.inbox_waiting))
    table.add_row("processed", str(status.processed))
    table.add_row("failed", str(status.failed))
    table.add_row("unmatched", str(status.unmatched))
    table.add_row("claims (folders)", str(status.claims))
    ctx.say(f"spool {ctx.settings.spool_dir}")
    ctx.print_table(table, "no spool folders")
    age = status.oldest_inbox_age_seconds
    ctx.say(f"oldest inbox file: {'-' if age is None else f'{age:.0f} s'}")
    for label, names in (
        ("stale claim", status.stale_claims),
        ("stale .eml without .meta", status.stale_eml_without_meta),
        ("refused (not a regular file)", status.refused),
    ):
        for name in names:
            ctx.say(f"{label}: {name}")
    return EXIT_OK


@spool.command("retry-failed", short_help="Move failed/ pairs back into the inbox.")
@pass_context
def retry_failed(ctx: Context) -> int:
    """Move the failed/ pairs back into the inbox (after fixing what failed them)."""
    return _report_requeue(ctx, "failed", *_service(ctx).retry_failed())


@spool.command("reingest-unmatched", short_help="Move unmatched/ pairs back into the inbox.")
@pass_context
def reingest_unmatched(ctx: Context) -> int:
    """Move the unmatched/ pairs back into the inbox (after adding a user or an alias)."""
    return _report_requeue(ctx, "unmatched", *_service(ctx).reingest_unmatched())


def _report_requeue(ctx: Context, folder: str, moved: int, problems: list[Problem]) -> int:
    ctx.say(f"moved {moved} {folder} pairs back to the inbox")
    for problem in problems:
        ctx.say(f"  left {problem.path}: {problem.reason}")
    return EXIT_OK


def register(root: click.Group) -> None:
    """Add the ``spool`` group to ``root``."""
    root.add_command(spool)
