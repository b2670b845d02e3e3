"""``mail-pipeline mailbox``: IMAP mailbox state and the circuit breaker's pause."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mail_pipeline.cli.common import (
    EXIT_OK,
    Context,
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
    from mail_pipeline.cli.common import Rows
    from mail_pipeline.storage.store import MailboxStatus


@group(
    "mailbox",
    "mail-pipeline mailbox list",
    "mail-pipeline mailbox show alice --json",
    "mail-pipeline mailbox resume alice",
)
def mailbox() -> None:
    """IMAP mailbox state and the circuit breaker's pause.

    Each mailbox's last success and failures in a row; after repeated authentication
    failures the mailbox is paused until it is resumed.
    """


def mailbox_json(state: MailboxStatus) -> dict[str, Any]:
    """Return a mailbox's state as a JSON-ready dict (timestamps ISO 8601 with their zone)."""
    return {
        "user": state.username,
        "state": "paused" if state.paused else "active",
        "last_attempt_at": iso_time(state.last_attempt_at),
        "last_success_at": iso_time(state.last_success_at),
        "last_failure_at": iso_time(state.last_failure_at),
        "consecutive_failures": state.consecutive_failures,
        "consecutive_auth_failures": state.consecutive_auth_failures,
        "last_error_kind": state.last_error_kind,
        "last_error": state.last_error,
        "paused_at": iso_time(state.paused_at),
        "paused_reason": state.paused_reason,
    }


def mailbox_table(boxes: list[MailboxStatus]) -> Rows:
    """Return the rows of ``boxes``: last success, failure streaks, paused or active (the last
    errors are printed after them by :func:`print_mailboxes`)."""
    table = new_table(
        "user",
        "last success",
        "failures",
        "auth failures",
        "state",
        numbers=("failures", "auth failures"),
        title="mailboxes",
    )
    for m in boxes:
        state = f"PAUSED since {show_time(m.paused_at)}" if m.paused else "active"
        table.add_row(
            m.username,
            show_time(m.last_success_at),
            str(m.consecutive_failures),
            str(m.consecutive_auth_failures),
            state_text(state),
        )
    return table


def print_mailboxes(ctx: Context, boxes: list[MailboxStatus]) -> None:
    """Print the rows of ``boxes`` ("no mailboxes" when there is none), then each mailbox's
    last error whole, one line each."""
    ctx.print_table(mailbox_table(boxes), "no mailboxes (none fetched yet)")
    failing = [m for m in boxes if m.last_error]
    if failing:
        ctx.say("last errors:")
        for m in failing:
            ctx.say(f"  {m.username}: {m.last_error_kind}: {' '.join(m.last_error.split())}")


@mailbox.command("list", short_help="List the mailboxes' state.")
@json_option
@pass_context
def list_mailboxes(ctx: Context, as_json: bool) -> int:
    """List every mailbox fetched so far: last success, failures, paused or active."""
    boxes = ctx.store.mailboxes.all()
    if as_json:
        emit_json([mailbox_json(m) for m in boxes])
        return EXIT_OK
    print_mailboxes(ctx, boxes)
    return EXIT_OK


@mailbox.command("show", short_help="Show one mailbox's state.")
@click.argument("username")
@json_option
@pass_context
def show_mailbox(ctx: Context, username: str, as_json: bool) -> int:
    """Show the mailbox state of USERNAME."""
    user = ctx.store.users.get(username)
    state = ctx.store.mailboxes.get(user.id)
    if as_json:
        emit_json(
            {"user": user.username, "mailbox": None if state is None else mailbox_json(state)}
        )
        return EXIT_OK
    if state is None:
        ctx.say(f"{user.username}: never fetched")
        return EXIT_OK
    from rich.text import Text

    head = Text(f"mailbox of {state.username}: ")
    head.append_text(state_text("PAUSED" if state.paused else "active"))
    ctx.say(head)
    lines = [
        f"  last attempt:       {show_time(state.last_attempt_at)}",
        f"  last success:       {show_time(state.last_success_at)}",
        f"  failures in a row:  {state.consecutive_failures} "
        f"({state.consecutive_auth_failures} authentication)",
    ]
    if state.last_error:
        lines.append(f"  last error:         {state.last_error_kind}: {state.last_error}")
    if state.paused:
        lines.append(f"  paused since:       {show_time(state.paused_at)}: {state.paused_reason}")
        lines.append(f"  to resume:          mail-pipeline imap resume {state.username}")
    for line in lines:
        ctx.say(line)
    return EXIT_OK


def mailbox_state_line(state: MailboxStatus) -> str:
    """One line on a mailbox's state (for ``imap show``)."""
    text = (
        f"mailbox: {'PAUSED since ' + show_time(state.paused_at) if state.paused else 'active'}"
        f"; last success {show_time(state.last_success_at)}; {state.consecutive_failures} "
        f"failure(s) in a row ({state.consecutive_auth_failures} authentication)"
    )
    if state.paused:
        text += f"; {state.paused_reason}; resume with: mail-pipeline imap resume {state.username}"
    return text


def resume(ctx: Context, username: str) -> int:
    """Lift the pause of USERNAME's mailbox and reset its counters (``mailbox resume`` and
    ``imap resume``)."""
    from mail_pipeline.intake.imap.circuit import MailboxCircuitBreaker

    was_paused, _state = MailboxCircuitBreaker(ctx.store).resume(username)
    what = (
        "resumed: the next fetch will try it again"
        if was_paused
        else "was not paused; failure counters reset"
    )
    ctx.say(f"{username}: {what}")
    return EXIT_OK


@mailbox.command("resume", short_help="Lift a pause and reset the failure counters.")
@click.argument("username")
@pass_context
def resume_mailbox(ctx: Context, username: str) -> int:
    """Lift the pause of USERNAME's mailbox and reset its failure counters (fix the
    password or the account first: the next fetch tries it again)."""
    return resume(ctx, username)


def register(root: click.Group) -> None:
    """Add the ``mailbox`` group to ``root``."""
    root.add_command(mailbox)
