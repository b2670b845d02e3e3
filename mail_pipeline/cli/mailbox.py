"""``mail-pipeline mailbox``: IMAP mailbox state and the circuit breaker's pause."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from mail_pipeline.cli.common import EXIT_OK, Context, command, group, show_time
from mail_pipeline.intake.imap.circuit import MailboxCircuitBreaker
from mail_pipeline.storage.store import MailboxStatus


def register(groups: Any) -> None:
    """Add the ``mailbox`` commands."""
    mb = group(groups, "mailbox", "IMAP mailbox state and the circuit breaker")
    command(mb, "list", list_mailboxes, "every mailbox: last success, failures, paused")
    show = command(mb, "show", show_mailbox, "one mailbox's state")
    show.add_argument("username")
    resume = command(
        mb,
        "resume",
        resume_mailbox,
        "lift a pause and reset the failure counters (fix the password first)",
    )
    resume.add_argument("username")


def mailbox_table(boxes: list[MailboxStatus]) -> Table:
    """Return a table of ``boxes``: last success, failure streaks, paused or active."""
    table = Table(
        "user",
        "last success",
        "failures",
        "auth failures",
        "state",
        "last error",
        title="mailboxes",
    )
    for m in boxes:
        state = f"PAUSED since {show_time(m.paused_at)}" if m.paused else "active"
        table.add_row(
            m.username,
            show_time(m.last_success_at),
            str(m.consecutive_failures),
            str(m.consecutive_auth_failures),
            state,
            f"{m.last_error_kind}: {m.last_error}"[:80] if m.last_error else "",
        )
    return table


def list_mailboxes(ctx: Context, _args: argparse.Namespace) -> int:
    """Print every recorded mailbox's state."""
    ctx.out.print(mailbox_table(ctx.store.mailboxes.all()))
    return EXIT_OK


def show_mailbox(ctx: Context, args: argparse.Namespace) -> int:
    """Print one mailbox's state."""
    user = ctx.store.users.get(args.username)
    state = ctx.store.mailboxes.get(user.id)
    if state is None:
        ctx.out.print(f"{user.username}: never fetched", markup=False, highlight=False)
        return EXIT_OK
    lines = [
        f"mailbox of {state.username}: {'PAUSED' if state.paused else 'active'}",
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
        ctx.out.print(line, markup=False, highlight=False)
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


def resume_mailbox(ctx: Context, args: argparse.Namespace) -> int:
    """Lift the pause of a mailbox and reset its counters."""
    was_paused, _state = MailboxCircuitBreaker(ctx.store).resume(args.username)
    what = (
        "resumed: the next fetch will try it again"
        if was_paused
        else "was not paused; failure counters reset"
    )
    ctx.out.print(f"{args.username}: {what}", markup=False, highlight=False)
    return EXIT_OK
