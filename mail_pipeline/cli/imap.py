"""``mail-pipeline imap``: a user's IMAP account: set, show, test, list, and fetch its mail."""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from mail_pipeline.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Context,
    UsageError,
    emit_json,
    group,
    json_option,
    new_table,
    pass_context,
)
from mail_pipeline.cli.mailbox import mailbox_json, mailbox_state_line, resume
from mail_pipeline.intake.limits import DEFAULT_MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    from mail_pipeline.intake.imap.config import EmailConfigManager
    from mail_pipeline.storage.store import TaskFinish

#: ``--security`` and ``--post-action`` choices: the values of ``ImapSecurity`` and
#: ``PostAction`` (mail_pipeline.intake.imap.account; the tests check they match).
SECURITIES = ("ssl", "starttls", "plain")
POST_ACTIONS = ("none", "mark_seen", "move", "delete")

#: How the stored config's field names read as this command's options, in messages.
_OPTION_NAMES = (
    (r"IMAP host \(imap_host\)|\bimap_host\b", "--host"),
    (r"IMAP port \(imap_ssl_port\)|\bimap_ssl_port\b", "--port"),
    (r"IMAP username\b", "--login"),
    (r"IMAP security\b", "--security"),
    (r"\boauth2_token_command\b", "--oauth2-token-command"),
    (r"\bca_file\b", "--ca-file"),
    (r"post_action 'move' needs move_to \(a folder\)", "--post-action move needs --move-to FOLDER"),
    (r"\bpost_action\b", "--post-action"),
    (r"\bmove_to\b", "--move-to"),
    (r"\bmax_message_bytes\b", "--max-message-bytes"),
    (r"\bmax_age_days\b", "--max-age-days"),
    (r"^since\b|(?<=; )since\b", "--since"),
    (r"\bunknown filter\b", "unknown --filter"),
    (r"\bfolders must\b", "--folder must"),
)


def option_names(text: str) -> str:
    """Return ``text`` (an IMAP config problem) with the stored field names replaced by the
    options of ``mail-pipeline imap set`` (``imap_ssl_port`` reads ``--port``)."""
    for pattern, option in _OPTION_NAMES:
        text = re.sub(pattern, option, text)
    return text


@group(
    "imap",
    "mail-pipeline imap set alice --host imap.example.org --password-env IMAP_PW",
    "mail-pipeline imap test alice",
    "mail-pipeline imap fetch alice",
    "mail-pipeline imap show alice --json",
)
def imap() -> None:
    """Users' IMAP accounts: set, test, fetch.

    Passwords are sealed with the secret key (see `mail-pipeline secret-key`) and always
    shown masked.
    """


def _manager(ctx: Context) -> EmailConfigManager:
    from mail_pipeline.intake.imap.config import EmailConfigManager

    return EmailConfigManager(ctx.store, ctx.settings.secret_key)


def _check_filter(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> list[str]:
    for value in values:
        if not (value == "unread" or value.startswith(("from:", "subject:"))):
            raise click.BadParameter(f"{value!r} is not unread, from:TEXT or subject:TEXT")
    return list(values)


@imap.command("set", short_help="Set a user's IMAP account.")
@click.argument("username")
@click.option("--host", required=True, help="The IMAP server's host name.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="The server's port (default 993 for ssl, else 143).",
)
@click.option("--login", help="The IMAP login name (default: the user's e-mail address).")
@click.option(
    "--security",
    type=click.Choice(SECURITIES),
    default="ssl",
    show_default=True,
    help="TLS from the start (ssl), STARTTLS, or none (plain, test servers only).",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--password-env", metavar="VAR", help="Read the password from the variable VAR.")
@click.option(
    "--oauth2-token-command", metavar="CMD", help="A command that prints an OAuth2 access token."
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False),
    help="An extra CA bundle for the server's certificate.",
)
@click.option(
    "--no-verify-tls",
    is_flag=True,
    help="Do not check the server's certificate (only for test servers).",
)
@click.option(
    "--folder",
    "folders",
    multiple=True,
    metavar="FOLDER",
    help="A folder to fetch (repeat for several; default INBOX).",
)
@click.option(
    "--max-age-days",
    type=click.IntRange(min=0),
    default=7,
    show_default=True,
    help="How far back the first fetch goes.",
)
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The first fetch takes nothing older than this date (YYYY-MM-DD).",
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    callback=_check_filter,
    help="A first-fetch filter: unread, from:TEXT or subject:TEXT (repeatable).",
)
@click.option(
    "--post-action",
    type=click.Choice(POST_ACTIONS),
    default="none",
    show_default=True,
    help="What to do on the server once a message is stored.",
)
@click.option("--move-to", metavar="FOLDER", help="The folder for --post-action move.")
@click.option(
    "--max-message-bytes",
    type=click.IntRange(min=1),
    metavar="BYTES",
    help="Larger messages are not fetched: they stay on the server and are recorded as too "
    f"large (default {DEFAULT_MAX_MESSAGE_BYTES}, the spool's limit).",
)
@pass_context
def set_config(
    ctx: Context,
    username: str,
    host: str,
    port: int | None,
    login: str | None,
    security: str,
    password_stdin: bool,
    password_env: str | None,
    oauth2_token_command: str | None,
    ca_file: str | None,
    no_verify_tls: bool,
    folders: tuple[str, ...],
    max_age_days: int,
    since: datetime | None,
    filters: list[str],
    post_action: str,
    move_to: str | None,
    max_message_bytes: int | None,
) -> int:
    """Set USERNAME's IMAP account. The password comes from standard input, a variable, or a
    prompt on a terminal; it is sealed before it is stored."""
    from mail_pipeline.errors import ConfigError

    sources = [bool(password_stdin), bool(password_env), bool(oauth2_token_command)]
    if sum(sources) > 1:
        raise UsageError(
            "give only one of --password-stdin, --password-env, --oauth2-token-command"
        )
    if post_action == "move" and not move_to:
        raise UsageError("--post-action move needs --move-to FOLDER")
    if not host.strip() or host != host.strip():
        raise UsageError(f"--host {host!r} is empty or has surrounding spaces")
    user = ctx.store.users.get(username)
    account: dict[str, Any] = {
        "imap_host": host,
        "imap_ssl_port": port or (993 if security == "ssl" else 143),
        "username": login or user.email,
        "security": security,
        "verify_tls": not no_verify_tls,
        "ca_file": os.path.abspath(ca_file) if ca_file else None,
        "post_action": post_action,
        "move_to": move_to,
    }
    if max_message_bytes is not None:
        account["max_message_bytes"] = max_message_bytes
    if oauth2_token_command:
        account["oauth2_token_command"] = oauth2_token_command
    elif password_env:
        value = os.environ.get(password_env)
        if not value:
            raise UsageError(f"the variable {password_env} (--password-env) is empty or not set")
        account["password"] = value
    elif password_stdin:
        account["password"] = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        account["password"] = getpass.getpass(f"IMAP password for {account['username']}: ")
    else:
        raise UsageError("give --password-stdin, --password-env VAR or --oauth2-token-command")
    config = {
        "mode": "custom_imap",
        "imap_config": account,
        "filter_config": {
            "folders": list(folders) or ["INBOX"],
            "max_age_days": max_age_days,
            "since": since.date().isoformat() if since else None,
            "filters": filters,
        },
    }
    try:
        shown = _manager(ctx).update_fetch_config(user.id, config)
    except ConfigError as exc:
        raise UsageError(option_names(str(exc))) from None
    ctx.say(f"IMAP account of {user.username} saved:")
    ctx.out.print_json(data=shown)
    return EXIT_OK


@imap.command("show", short_help="Show a user's IMAP account (secrets masked).")
@click.argument("username")
@json_option
@pass_context
def show_config(ctx: Context, username: str, as_json: bool) -> int:
    """Show USERNAME's IMAP account (every secret masked) and its mailbox state."""
    manager = _manager(ctx)
    user = ctx.store.users.get(username)
    config = manager.get_email_config(user.username)
    if not config:
        raise UsageError(
            f"{user.username} has no IMAP account (set one with mail-pipeline imap set)"
        )
    masked = manager.masked_config(config)
    state = ctx.store.mailboxes.get(user.id)
    if as_json:
        emit_json(
            {
                "user": user.username,
                "email_config": masked,
                "mailbox": None if state is None else mailbox_json(state),
            }
        )
        return EXIT_OK
    ctx.say(f"IMAP account of {user.username}:")
    ctx.out.print_json(data=masked)
    if state is not None:
        ctx.say(mailbox_state_line(state))
    return EXIT_OK


@imap.command("resume", short_help="Resume a mailbox paused after login failures.")
@click.argument("username")
@pass_context
def resume_account(ctx: Context, username: str) -> int:
    """Lift the pause of USERNAME's mailbox after authentication failures (fix the password
    first: the next fetch tries it again)."""
    return resume(ctx, username)


@imap.command("test", short_help="Log in and list the folders; fetch nothing.")
@click.argument("username")
@json_option
@pass_context
def test_login(ctx: Context, username: str, as_json: bool) -> int:
    """Log in with USERNAME's account and list its folders with UIDVALIDITY and UIDNEXT;
    nothing is fetched or changed."""
    from mail_pipeline.errors import ConfigError, ImapError
    from mail_pipeline.intake.imap.connection import imap_session
    from mail_pipeline.intake.imap.translate import translate_imap_errors

    try:
        fetch = _manager(ctx).imap_fetch_config(ctx.store.users.get(username).username)
    except ConfigError as exc:
        raise UsageError(option_names(str(exc))) from None
    account = fetch.account
    rows = []
    try:
        with imap_session(account) as client, translate_imap_errors("listing folders"):
            for _flags, _delim, name in client.list_folders():
                folder = name.decode() if isinstance(name, bytes) else str(name)
                status = client.folder_status(folder, [b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES"])
                rows.append(
                    {
                        "folder": folder,
                        "uidvalidity": status.get(b"UIDVALIDITY"),
                        "uidnext": status.get(b"UIDNEXT"),
                        "messages": status.get(b"MESSAGES"),
                        "synced": folder in fetch.filters.folders,
                    }
                )
    except ImapError as exc:
        ctx.warn(f"{username}: {account.endpoint}: {exc}")
        return EXIT_FAILED
    if as_json:
        emit_json({"user": username, "endpoint": account.endpoint, "folders": rows})
        return EXIT_OK
    ctx.say(f"logged in to {account.endpoint}")
    table = new_table("folder", "UIDVALIDITY", "UIDNEXT", "messages", "fetched")
    for row in rows:
        table.add_row(
            row["folder"],
            str(row["uidvalidity"] or ""),
            str(row["uidnext"] or ""),
            str(row["messages"] or ""),
            "yes" if row["synced"] else "",
        )
    ctx.print_table(table, "no folders")
    return EXIT_OK


@imap.command("list", short_help="List the users with an IMAP account.")
@json_option
@pass_context
def list_accounts(ctx: Context, as_json: bool) -> int:
    """List the active users with an IMAP account, and what is wrong with an invalid one."""
    found = _manager(ctx).imap_users()
    if as_json:
        emit_json(
            [
                {"user": name, "valid": valid, "problem": option_names(problem)}
                for _uid, name, valid, problem in found
            ]
        )
        return EXIT_OK
    table = new_table("user", "valid", "problem")
    for _uid, name, valid, problem in found:
        table.add_row(name, "yes" if valid else "no", option_names(problem))
    ctx.print_table(table, "no IMAP accounts")
    return EXIT_OK


@imap.command("fetch", short_help="Fetch a user's new mail once.")
@click.argument("username")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Messages per UID FETCH and per transaction.",
)
@click.option("--force", is_flag=True, help="Fetch even a mailbox paused by the circuit breaker.")
@pass_context
def fetch_mail(ctx: Context, username: str, batch_size: int, force: bool) -> int:
    """Fetch USERNAME's new mail once, recorded as an IMAP_EMAIL_FETCH task. Exit 0 when the
    mailbox was fetched, 1 when the fetch failed (the task is FAILED with the reason), 2 when
    the user has no usable IMAP account or the mailbox is paused (no task is recorded).

    A progress bar is shown on a terminal, one summary line otherwise.
    """
    from mail_pipeline.errors import ConfigError
    from mail_pipeline.intake.imap.circuit import MailboxCircuitBreaker
    from mail_pipeline.intake.imap.fetcher import MailboxFetcher
    from mail_pipeline.storage.attachments import AttachmentStorage
    from mail_pipeline.storage.heartbeat import TaskHeartbeat
    from mail_pipeline.storage.save_service import EmailSaveService
    from mail_pipeline.storage.store import EmailSource, TaskStatus

    store = ctx.store
    user = store.users.get(username)
    manager = _manager(ctx)
    # Checked before any task or mailbox record exists: a user without a usable account is a
    # usage error, not a failed fetch.
    if manager.detect_email_source(user.username) is not EmailSource.IMAP:
        raise UsageError(
            f"{user.username} has no IMAP account: set one with "
            f"`mail-pipeline imap set {user.username} --host HOST`"
        )
    try:
        manager.imap_fetch_config(user.username)
    except ConfigError as exc:
        raise UsageError(f"{user.username}: {option_names(str(exc))}") from None
    state = store.mailboxes.get(user.id)
    if state is not None and state.paused and not force:
        raise UsageError(
            f"the mailbox of {user.username} is paused ({state.paused_reason}): fix the account, "
            f"then run `mail-pipeline imap resume {user.username}`, or add --force"
        )
    fetcher = MailboxFetcher(
        store,
        EmailSaveService(store, AttachmentStorage(ctx.settings.attachment_root)),
        manager,
        batch_size=batch_size,
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
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

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
            line = decision.log_line()
        else:
            line = f"{user.username}: {result.error_kind.value} error: {result.error}"
        ctx.warn(f"{line} (task {task.task_id})")
        return EXIT_FAILED
    _note_closed(ctx, store.tasks.finish(task.task_id, message=result.summary()))
    ctx.say(f"{user.username}: {result.summary()} (task {task.task_id})")
    for folder, uid, reason in result.failed_uids:
        ctx.say(f"  failed: folder {folder!r} UID {uid}: {reason}")
    for warning in result.warnings:
        ctx.say(f"  warning: {warning}")
    return EXIT_OK


def _note_closed(ctx: Context, done: TaskFinish) -> None:
    """Say so when the fetch's task had been closed under it."""
    if done.already_closed:
        ctx.warn(f"note: {done.note()}; the fetch was done all the same")


def register(root: click.Group) -> None:
    """Add the ``imap`` group to ``root``."""
    root.add_command(imap)
