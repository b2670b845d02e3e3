"""``mail-pipeline imap``: a user's IMAP account: set, show, test, list, and fetch its mail."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sys
from typing import Any

from rich.table import Table

from mail_pipeline.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Context,
    UsageError,
    command,
    group,
    positive_int,
)
from mail_pipeline.cli.mailbox import mailbox_state_line, resume_mailbox
from mail_pipeline.errors import ImapError
from mail_pipeline.intake.imap.account import ImapSecurity, PostAction
from mail_pipeline.intake.imap.circuit import MailboxCircuitBreaker
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.connection import imap_session
from mail_pipeline.intake.imap.translate import translate_imap_errors
from mail_pipeline.intake.limits import DEFAULT_MAX_MESSAGE_BYTES
from mail_pipeline.storage.store import TaskFinish


def register(groups: Any) -> None:
    """Add the ``imap`` commands."""
    sub = group(groups, "imap", "users' IMAP accounts")
    s = command(sub, "set", set_config, "set a user's IMAP account (the password is encrypted)")
    s.add_argument("username")
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, help="default 993 for ssl, 143 otherwise")
    s.add_argument("--login", help="IMAP login name (default: the user's e-mail)")
    s.add_argument("--security", choices=[m.value for m in ImapSecurity], default="ssl")
    secret = s.add_mutually_exclusive_group()
    secret.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    secret.add_argument(
        "--password-env", metavar="VAR", help="read the password from environment variable VAR"
    )
    secret.add_argument(
        "--oauth2-token-command", metavar="CMD", help="a command that prints an OAuth2 access token"
    )
    s.add_argument("--ca-file", help="extra CA bundle for the server's certificate")
    s.add_argument(
        "--no-verify-tls",
        action="store_true",
        help="do not check the server certificate (only for test servers)",
    )
    s.add_argument(
        "--folder",
        action="append",
        dest="folders",
        metavar="FOLDER",
        help="folder to sync (repeatable; default INBOX)",
    )
    s.add_argument(
        "--max-age-days", type=int, default=7, help="how far back the first sync goes (default 7)"
    )
    s.add_argument("--since", help="first sync takes nothing older than this date (YYYY-MM-DD)")
    s.add_argument(
        "--filter",
        action="append",
        dest="filters",
        default=[],
        help="first-sync filter: unread, from:TEXT or subject:TEXT (repeatable)",
    )
    s.add_argument(
        "--post-action",
        choices=[p.value for p in PostAction],
        default="none",
        help="what to do on the server after a message is stored (default none)",
    )
    s.add_argument("--move-to", help="folder for --post-action move")
    s.add_argument(
        "--max-message-bytes",
        type=positive_int,
        metavar="BYTES",
        help="larger messages are not fetched: they stay on the server and their "
        f"UIDs are recorded as too_large (default {DEFAULT_MAX_MESSAGE_BYTES}, "
        "the spool's limit)",
    )
    show = command(
        sub, "show", show_config, "show a user's IMAP config (secrets masked) and its mailbox state"
    )
    show.add_argument("username")
    resume = command(
        sub,
        "resume",
        resume_mailbox,
        "lift a mailbox paused after authentication failures (fix it first)",
    )
    resume.add_argument("username")
    test = command(
        sub, "test", test_login, "log in, list folders, print UIDVALIDITY/UIDNEXT; fetches nothing"
    )
    test.add_argument("username")
    command(sub, "list", list_accounts, "list users with an IMAP config")
    fetch = command(
        sub, "fetch", fetch_mail, "fetch a user's new mail once (records an IMAP_EMAIL_FETCH task)"
    )
    fetch.add_argument("username")
    fetch.add_argument(
        "--batch-size",
        type=positive_int,
        default=100,
        help="messages per UID FETCH and per transaction (default 100)",
    )


def _manager(ctx: Context) -> EmailConfigManager:
    return EmailConfigManager(ctx.store, ctx.settings.secret_key)


def set_config(ctx: Context, args: argparse.Namespace) -> int:
    """Validate and store a user's IMAP config."""
    user = ctx.store.users.get(args.username)
    imap: dict[str, Any] = {
        "imap_host": args.host,
        "imap_ssl_port": args.port or (993 if args.security == "ssl" else 143),
        "username": args.login or user.email,
        "security": args.security,
        "verify_tls": not args.no_verify_tls,
        "ca_file": os.path.abspath(args.ca_file) if args.ca_file else None,
        "post_action": args.post_action,
        "move_to": args.move_to,
    }
    if args.max_message_bytes is not None:
        imap["max_message_bytes"] = args.max_message_bytes
    if args.oauth2_token_command:
        imap["oauth2_token_command"] = args.oauth2_token_command
    elif args.password_env:
        value = os.environ.get(args.password_env)
        if not value:
            raise UsageError(f"environment variable {args.password_env} is empty or not set")
        imap["password"] = value
    elif args.password_stdin:
        imap["password"] = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        imap["password"] = getpass.getpass(f"IMAP password for {imap['username']}: ")
    else:
        raise UsageError("give --password-stdin, --password-env VAR or --oauth2-token-command")
    config = {
        "mode": "custom_imap",
        "imap_config": imap,
        "filter_config": {
            "folders": args.folders or ["INBOX"],
            "max_age_days": args.max_age_days,
            "since": args.since,
            "filters": args.filters,
        },
    }
    shown = _manager(ctx).update_fetch_config(user.id, config)
    ctx.out.print(f"IMAP config of {user.username} saved:")
    ctx.out.print_json(json.dumps(shown))
    return EXIT_OK


def show_config(ctx: Context, args: argparse.Namespace) -> int:
    """Print a user's IMAP config with every secret masked."""
    manager = _manager(ctx)
    config = manager.get_email_config(args.username)
    if not config:
        raise UsageError(f"user {args.username} has no email_config")
    ctx.out.print_json(json.dumps(manager.masked_config(config)))
    state = ctx.store.mailboxes.get(ctx.store.users.get(args.username).id)
    if state is not None:
        ctx.out.print(mailbox_state_line(state), markup=False, highlight=False)
    return EXIT_OK


def list_accounts(ctx: Context, _args: argparse.Namespace) -> int:
    """Print users with an IMAP config and whether it is valid."""
    table = Table("user", "valid", "problem")
    for _uid, name, valid, problem in _manager(ctx).imap_users():
        table.add_row(name, "yes" if valid else "no", problem)
    ctx.out.print(table)
    return EXIT_OK


def test_login(ctx: Context, args: argparse.Namespace) -> int:
    """Log in with a user's config, list folders and their UIDVALIDITY/UIDNEXT."""
    fetch = _manager(ctx).imap_fetch_config(args.username)
    account = fetch.account
    try:
        with imap_session(account) as client, translate_imap_errors("listing folders"):
            table = Table("folder", "UIDVALIDITY", "UIDNEXT", "messages", "synced")
            for _flags, _delim, name in client.list_folders():
                folder = name.decode() if isinstance(name, bytes) else str(name)
                status = client.folder_status(folder, [b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES"])
                table.add_row(
                    folder,
                    str(status.get(b"UIDVALIDITY", "")),
                    str(status.get(b"UIDNEXT", "")),
                    str(status.get(b"MESSAGES", "")),
                    "yes" if folder in fetch.filters.folders else "",
                )
    except ImapError as exc:
        ctx.err.print(f"mail-pipeline: {account.endpoint}: {exc}", markup=False)
        return EXIT_FAILED
    ctx.out.print(f"logged in to {account.endpoint}")
    ctx.out.print(table)
    return EXIT_OK


def fetch_mail(ctx: Context, args: argparse.Namespace) -> int:
    """Fetch one user's new mail once; exit 0 when the mailbox was fetched, 1 when it failed.

    The run is recorded as an IMAP_EMAIL_FETCH EmailTask: RUNNING, then COMPLETED with the
    counters, or FAILED with the error. A progress bar is shown on a terminal, one summary
    line otherwise.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from mail_pipeline.intake.imap.fetcher import MailboxFetcher
    from mail_pipeline.storage.attachments import AttachmentStorage
    from mail_pipeline.storage.heartbeat import TaskHeartbeat
    from mail_pipeline.storage.save_service import EmailSaveService
    from mail_pipeline.storage.store import EmailSource, TaskStatus

    store = ctx.store
    user = store.users.get(args.username)
    fetcher = MailboxFetcher(
        store,
        EmailSaveService(store, AttachmentStorage(ctx.settings.attachment_root)),
        _manager(ctx),
        batch_size=args.batch_size,
    )
    task = store.tasks.create(
        EmailSource.IMAP,
        user_id=user.id,
        status=TaskStatus.RUNNING,
        message=f"imap fetch {user.username} from the command line",
    )
    beat = TaskHeartbeat(store, task.task_id).start()  # keeps stale-task cleanup off the task
    try:
        if ctx.out.is_terminal:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=ctx.out,
                transient=True,
            ) as bar:
                job = bar.add_task(f"fetching {user.username}", total=None)
                result = fetcher.fetch_user(
                    user.id,
                    task_id=task.task_id,
                    progress=lambda done, total: bar.update(job, completed=done, total=total),
                )
        else:
            result = fetcher.fetch_user(user.id, task_id=task.task_id)
    except BaseException as exc:  # store outage, a bug, Ctrl-C: the task must not stay RUNNING
        # The store may be what is down; then stale-task cleanup closes the task later.
        with contextlib.suppress(Exception):
            store.tasks.finish(task.task_id, error=f"{type(exc).__name__}: {exc}"[:1000])
        raise
    finally:
        beat.stop()
    # A manual fetch counts for the circuit breaker like a scheduled one: a success lifts the
    # failure streak, a refused login adds to it.
    threshold = ctx.settings.auth_failures_to_pause
    decision = MailboxCircuitBreaker(store, auth_failures_to_pause=threshold).record(result)
    if not result.ok:
        _note_closed(
            ctx,
            store.tasks.finish(task.task_id, error=f"{result.error_kind.value}: {result.error}"),
        )
        if decision is not None and decision.just_paused:  # the pause line names the error
            line = " ".join(decision.log_line().split())
        else:
            line = f"{user.username}: " + " ".join(
                f"{result.error_kind.value} error: {result.error}".split()
            )
        ctx.err.print(f"mail-pipeline: {line}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_FAILED
    _note_closed(ctx, store.tasks.finish(task.task_id, message=result.summary()))
    ctx.out.print(f"{result.summary()} (task {task.task_id})", markup=False, highlight=False)
    for folder, uid, reason in result.failed_uids:
        ctx.out.print(
            f"  failed: folder {folder!r} UID {uid}: {reason}", markup=False, highlight=False
        )
    for warning in result.warnings:
        ctx.out.print(f"  warning: {warning}", markup=False, highlight=False)
    return EXIT_OK


def _note_closed(ctx: Context, done: TaskFinish) -> None:
    """Say so when the fetch's task had been closed under it."""
    if done.already_closed:
        ctx.err.print(
            f"mail-pipeline: note: {done.note()}; the fetch was done all the same",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
