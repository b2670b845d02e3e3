"""``mail-pipeline imap``: a user's IMAP account: set, show, test."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

from rich.table import Table

from mail_pipeline.cli.app import EXIT_FAILED, EXIT_OK, Context, UsageError, command, group
from mail_pipeline.email_config import EmailConfigManager, PostAction
from mail_pipeline.errors import ImapError
from mail_pipeline.imap_connection import ImapSecurity, imap_session, translate_imap_errors


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
    secret.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input")
    secret.add_argument("--password-env", metavar="VAR",
                        help="read the password from environment variable VAR")
    secret.add_argument("--oauth2-token-command", metavar="CMD",
                        help="a command that prints an OAuth2 access token")
    s.add_argument("--ca-file", help="extra CA bundle for the server's certificate")
    s.add_argument("--no-verify-tls", action="store_true",
                   help="do not check the server certificate (only for test servers)")
    s.add_argument("--folder", action="append", dest="folders", metavar="FOLDER",
                   help="folder to sync (repeatable; default INBOX)")
    s.add_argument("--max-age-days", type=int, default=7,
                   help="how far back the first sync goes (default 7)")
    s.add_argument("--since", help="first sync takes nothing older than this date (YYYY-MM-DD)")
    s.add_argument("--filter", action="append", dest="filters", default=[],
                   help="first-sync filter: unread, from:TEXT or subject:TEXT (repeatable)")
    s.add_argument("--post-action", choices=[p.value for p in PostAction], default="none",
                   help="what to do on the server after a message is stored (default none)")
    s.add_argument("--move-to", help="folder for --post-action move")
    show = command(sub, "show", show_config, "show a user's IMAP config (secrets masked)")
    show.add_argument("username")
    test = command(sub, "test", test_login,
                   "log in, list folders, print UIDVALIDITY/UIDNEXT; fetches nothing")
    test.add_argument("username")
    command(sub, "list", list_accounts, "list users with an IMAP config")


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
                table.add_row(folder, str(status.get(b"UIDVALIDITY", "")),
                              str(status.get(b"UIDNEXT", "")), str(status.get(b"MESSAGES", "")),
                              "yes" if folder in fetch.filters.folders else "")
    except ImapError as exc:
        ctx.err.print(f"mail-pipeline: {account.endpoint}: {exc}", markup=False)
        return EXIT_FAILED
    ctx.out.print(f"logged in to {account.endpoint}")
    ctx.out.print(table)
    return EXIT_OK
