"""``mail-pipeline imap``: a user's IMAP account: set, show, test, list, authorize (OAuth2),
and fetch its mail."""

from __future__ import annotations

import contextlib
import getpass
import os
import sys
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import click

from mail_pipeline.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Context,
    UsageError,
    emit_json,
    group,
    iso_time,
    json_option,
    new_table,
    pass_context,
    show_time,
)
from mail_pipeline.cli.mailbox import mailbox_json, mailbox_state_line, resume
from mail_pipeline.intake.limits import DEFAULT_MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    from mail_pipeline.errors import ConfigError
    from mail_pipeline.intake.imap.config import EmailConfigManager
    from mail_pipeline.oauth2.authorization import OAuth2Client
    from mail_pipeline.oauth2.device_flow import DeviceCode
    from mail_pipeline.storage.store import TaskFinish

#: ``--security`` and ``--post-action`` choices: the values of ``ImapSecurity`` and
#: ``PostAction`` (mail_pipeline.intake.imap.account; the tests check they match).
SECURITIES = ("ssl", "starttls", "plain")
POST_ACTIONS = ("none", "mark_seen", "move", "delete")
#: ``--provider``: the presets of mail_pipeline.oauth2.providers, and ``custom``; ``--sasl``
#: and ``--flow`` choices (the tests check they match the core's).
PROVIDERS = ("gmail", "microsoft365", "custom")
SASL_MECHANISMS = ("xoauth2", "oauthbearer")
FLOWS = ("device", "loopback")
#: Seconds ``imap authorize`` waits for the user by default (Microsoft's codes last 15 min).
AUTHORIZE_TIMEOUT = 900.0

#: How each field of a stored IMAP config (the keys of
#: mail_pipeline.intake.imap.problems.STORED_FIELDS) is named in this group's messages: the
#: option of ``imap set`` that sets it. The three without an option keep their stored name,
#: as ``imap show --json`` prints it (the tests check the mapping covers every field and that
#: each option exists).
OPTION_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "imap_config": "imap_config",
        "imap_host": "--host",
        "imap_ssl_port": "--port",
        "username": "--login",
        "security": "--security",
        "password": "--password-stdin/--password-env",
        "oauth2_token": "oauth2_token",
        "oauth2_token_command": "--oauth2-token-command",
        "oauth2_client_id": "--client-id",
        "oauth2_client_secret": "--client-secret-stdin/--client-secret-env",
        "oauth2_token_endpoint": "--token-endpoint",
        "oauth2_device_endpoint": "--device-endpoint",
        "oauth2_authorize_endpoint": "--authorize-endpoint",
        "oauth2_scopes": "--scope",
        "sasl_mechanism": "--sasl",
        "provider": "--provider",
        "ca_file": "--ca-file",
        "post_action": "--post-action",
        "move_to": "--move-to",
        "max_message_bytes": "--max-message-bytes",
        "filter_config": "filter_config",
        "max_age_days": "--max-age-days",
        "since": "--since",
        "filters": "--filter",
        "folders": "--folder",
    }
)


def config_problem_text(exc: ConfigError) -> str:
    """Return the message of ``exc`` with each field it is about named by its ``imap set``
    option (:data:`OPTION_NAMES`: ``--port``, not ``IMAP port (imap_ssl_port)``); a
    ConfigError that carries no problems (no such config, no secret key) as it is."""
    from mail_pipeline.intake.imap.problems import ConfigProblemError

    if isinstance(exc, ConfigProblemError):
        return exc.render(OPTION_NAMES)
    return str(exc)


@group(
    "imap",
    "mail-pipeline imap set alice --host imap.example.org --password-env IMAP_PW",
    "mail-pipeline imap set bob --provider microsoft365 --client-id APP_ID",
    "mail-pipeline imap authorize bob",
    "mail-pipeline imap test alice",
    "mail-pipeline imap fetch alice",
    "mail-pipeline imap show alice --json",
)
def imap() -> None:
    """Users' IMAP accounts: set, authorize (OAuth2), test, fetch.

    Passwords, client secrets and refresh tokens are sealed with the secret key (see
    `mail-pipeline secret-key`) and always shown masked.
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
@click.option("--host", help="The IMAP server's host name (set by --provider).")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="The server's port (default 993 for ssl, else 143).",
)
@click.option("--login", help="The IMAP login name (default: the user's e-mail address).")
@click.option(
    "--security",
    type=click.Choice(SECURITIES),
    help="TLS from the start (ssl, the default), STARTTLS, or none (plain, test servers only).",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--password-env", metavar="VAR", help="Read the password from the variable VAR.")
@click.option(
    "--oauth2-token-command", metavar="CMD", help="A command that prints an OAuth2 access token."
)
@click.option(
    "--provider",
    type=click.Choice(PROVIDERS),
    help="An OAuth2 account: gmail and microsoft365 fill the host, port, security, SASL "
    "mechanism, endpoints and scopes; custom sets each with the options below.",
)
@click.option(
    "--tenant",
    help="The Microsoft 365 tenant: common (default), organizations, a tenant ID or domain.",
)
@click.option("--client-id", metavar="ID", help="The OAuth2 client (application) ID of your app.")
@click.option(
    "--client-secret-stdin",
    is_flag=True,
    help="Read the OAuth2 client secret from standard input (with neither secret option, "
    "the stored secret of the same client id is kept).",
)
@click.option("--client-secret-env", metavar="VAR", help="Read the OAuth2 client secret from VAR.")
@click.option("--token-endpoint", metavar="URL", help="The OAuth2 token endpoint (custom).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    metavar="SCOPE",
    help="An OAuth2 scope to ask for (repeatable; custom).",
)
@click.option(
    "--device-endpoint", metavar="URL", help="The device authorization endpoint (custom)."
)
@click.option("--authorize-endpoint", metavar="URL", help="The authorization endpoint (custom).")
@click.option(
    "--sasl",
    type=click.Choice(SASL_MECHANISMS),
    help="The SASL mechanism of an OAuth2 login (default xoauth2).",
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
    /,
    username: str,
    host: str | None,
    port: int | None,
    login: str | None,
    security: str | None,
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
    **oauth2: Any,
) -> int:
    """Set USERNAME's IMAP account. A password comes from standard input, a variable, or a
    prompt on a terminal; an OAuth2 account (--provider, --client-id) is authorized next with
    `mail-pipeline imap authorize USERNAME`. Secrets are sealed before they are stored."""
    from mail_pipeline.errors import ConfigError

    sources = [bool(password_stdin), bool(password_env), bool(oauth2_token_command)]
    if sum(sources) > 1:
        raise UsageError(
            "give only one of --password-stdin, --password-env, --oauth2-token-command"
        )
    if post_action == "move" and not move_to:
        raise UsageError("--post-action move needs --move-to FOLDER")
    if host is not None and (not host.strip() or host != host.strip()):
        raise UsageError(f"--host {host!r} is empty or has surrounding spaces")
    user = ctx.store.users.get(username)
    # --sasl alone belongs to any OAuth2 login (a token command too); the rest is a client.
    is_client = any(value for name, value in oauth2.items() if name != "sasl")
    client = _oauth2_fields(ctx, user.username, oauth2) if is_client else None
    if not is_client and oauth2["sasl"] and not oauth2_token_command:
        raise UsageError("--sasl is for OAuth2 logins: give an OAuth2 client or a token command")
    if client is not None and any(sources):
        raise UsageError(
            "give a password (--password-stdin, --password-env), --oauth2-token-command or an "
            "OAuth2 client (--provider, --client-id ...), not both"
        )
    host = host or (client or {}).get("imap_host")
    if not host:
        raise UsageError("--host is needed (or --provider gmail|microsoft365)")
    security = security or (client or {}).get("security") or "ssl"
    account: dict[str, Any] = {
        **(client or {}),
        "imap_host": host,
        "imap_ssl_port": port
        or (client or {}).get("imap_ssl_port")
        or (993 if security == "ssl" else 143),
        "username": login or user.email,
        "security": security,
        "verify_tls": not no_verify_tls,
        "ca_file": os.path.abspath(ca_file) if ca_file else None,
        "post_action": post_action,
        "move_to": move_to,
    }
    if max_message_bytes is not None:
        account["max_message_bytes"] = max_message_bytes
    if client is not None:
        pass  # the OAuth2 client is the credential; the refresh token comes from authorize
    elif oauth2_token_command:
        account["oauth2_token_command"] = oauth2_token_command
        if oauth2["sasl"]:
            account["sasl_mechanism"] = oauth2["sasl"]
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
        raise UsageError(
            "give --password-stdin, --password-env VAR, --oauth2-token-command or an OAuth2 "
            "client (--provider, --client-id)"
        )
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
    manager = _manager(ctx)
    before = (manager.get_email_config(user.id).get("imap_config") or {}).get("oauth2_client_id")
    try:
        shown = manager.update_fetch_config(user.id, config)
    except ConfigError as exc:
        raise UsageError(config_problem_text(exc)) from None
    ctx.say(f"IMAP account of {user.username} saved:")
    ctx.out.print_json(data=shown)
    _note_grant(ctx, user.id, user.username, before, (client or {}).get("oauth2_client_id"))
    return EXIT_OK


def _note_grant(
    ctx: Context, user_id: int, username: str, before: str | None, after: str | None
) -> None:
    """After ``imap set``: drop a stored OAuth2 grant that belonged to another client (it
    cannot refresh for the new one) and say whether the mailbox must be authorized."""
    from mail_pipeline.oauth2.grants import has_grant, remove_grant

    if before and before != after and remove_grant(ctx.store, user_id):
        ctx.say(f"the authorization of the previous OAuth2 client {before} was removed")
    if after is None:
        return
    if has_grant(ctx.store, user_id):
        ctx.say(
            f"{username} stays authorized (run `mail-pipeline imap authorize {username}` to "
            "replace the grant)"
        )
    else:
        ctx.say(
            f"next: authorize the mailbox with `mail-pipeline imap authorize {username}` "
            "(the user signs in and consents; the refresh token is stored sealed)"
        )


def _oauth2_fields(ctx: Context, username: str, options: dict[str, Any]) -> dict[str, Any]:
    """Return the ``imap_config`` fields of an OAuth2 client account from ``imap set``'s
    OAuth2 options: the preset's fields, then every option given (it wins over the preset),
    then the client secret (from stdin or a variable; kept from the stored account when
    neither is given and the client id is unchanged).

    Raises:
        UsageError: a missing --client-id or --token-endpoint, --tenant without microsoft365,
            a SASL mechanism the provider does not offer, two secret sources, an empty secret.
    """
    from mail_pipeline.errors import ConfigError
    from mail_pipeline.oauth2.providers import PRESETS, preset, preset_fields
    from mail_pipeline.platform.secret_box import mask

    provider = options["provider"] or "custom"
    tenant, client_id = options["tenant"], options["client_id"]
    if tenant is not None and provider != "microsoft365":
        raise UsageError("--tenant is only for --provider microsoft365")
    if not client_id or not client_id.strip():
        raise UsageError(
            "an OAuth2 account needs --client-id: the application (client) ID of the app "
            "registered with the provider (see the OAuth2 section of deploy/README.md)"
        )
    if options["client_secret_stdin"] and options["client_secret_env"]:
        raise UsageError("give only one of --client-secret-stdin, --client-secret-env")
    try:
        chosen = preset(provider, tenant=tenant) if provider in PRESETS else None
    except ConfigError as exc:
        raise UsageError(f"--tenant: {exc}") from None
    fields: dict[str, Any] = preset_fields(chosen) if chosen else {"provider": "custom"}
    sasl = options["sasl"]
    if chosen is not None and sasl is not None and sasl not in chosen.sasl_mechanisms:
        raise UsageError(
            f"--sasl {sasl}: {chosen.imap_host} offers only {', '.join(chosen.sasl_mechanisms)}"
        )
    given = {
        "sasl_mechanism": sasl,
        "oauth2_token_endpoint": options["token_endpoint"],
        "oauth2_device_endpoint": options["device_endpoint"],
        "oauth2_authorize_endpoint": options["authorize_endpoint"],
        "oauth2_scopes": list(options["scopes"]) or None,
    }
    fields.update({name: value for name, value in given.items() if value is not None})
    fields.setdefault("sasl_mechanism", "xoauth2")
    fields.setdefault("oauth2_scopes", [])
    if not fields.get("oauth2_token_endpoint"):
        raise UsageError("--provider custom needs --token-endpoint URL")
    fields["oauth2_client_id"] = client_id.strip()
    secret: str | None = None
    if options["client_secret_env"]:
        secret = os.environ.get(options["client_secret_env"])
        if not secret:
            raise UsageError(
                f"the variable {options['client_secret_env']} (--client-secret-env) is empty "
                "or not set"
            )
    elif options["client_secret_stdin"]:
        secret = sys.stdin.readline().rstrip("\r\n")
        if not secret:
            raise UsageError("--client-secret-stdin: standard input gave an empty secret")
    else:
        stored = _manager(ctx).get_email_config(username).get("imap_config") or {}
        if stored.get("oauth2_client_secret") and stored.get("oauth2_client_id") == client_id:
            secret = mask("x")  # the stored secret is kept (update_fetch_config)
    fields["oauth2_client_secret"] = secret
    return fields


@imap.command("authorize", short_help="Authorize an OAuth2 account; store its refresh token.")
@click.argument("username")
@click.option(
    "--flow",
    type=click.Choice(FLOWS),
    help="device: a URL and a code to enter on any device (RFC 8628; Microsoft 365's "
    "default); loopback: a browser on this machine returns to 127.0.0.1 (RFC 8252; Gmail's).",
)
@click.option("--no-browser", is_flag=True, help="Loopback: print the URL only, open no browser.")
@click.option(
    "--redirect-port",
    type=click.IntRange(1, 65535),
    metavar="PORT",
    help="Loopback: listen on 127.0.0.1:PORT (default a free port; fix it for an SSH tunnel).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=AUTHORIZE_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the user to sign in and consent.",
)
@pass_context
def authorize_account(
    ctx: Context,
    username: str,
    flow: str | None,
    no_browser: bool,
    redirect_port: int | None,
    timeout: float,
) -> int:
    """Authorize USERNAME's OAuth2 account (set with `imap set --provider` or --client-id):
    print the URL to open (and, for the device flow, the code to enter), wait for the user
    to sign in and consent, and store the refresh token sealed. Exit 0 when it is stored, 1
    when the authorization failed (declined, expired, timed out, endpoint down: nothing is
    stored), 2 when the account cannot be authorized this way."""
    import webbrowser

    from mail_pipeline.oauth2.authorization import AuthorizationFailed
    from mail_pipeline.oauth2.device_flow import run_device_flow
    from mail_pipeline.oauth2.grants import store_refresh_token
    from mail_pipeline.oauth2.loopback_flow import run_loopback_flow

    manager = _manager(ctx)
    user = ctx.store.users.get(username)
    client, chosen = _authorization_client(manager, user.username, flow)
    if redirect_port is not None and chosen != "loopback":
        raise UsageError("--redirect-port is only for --flow loopback")
    try:
        if chosen == "device":
            token = run_device_flow(
                client,
                show=lambda code: _show_device_code(ctx, user.username, code),
                timeout=timeout,
            )
        else:
            token = run_loopback_flow(
                client,
                show=lambda url: _show_authorize_url(ctx, user.username, url, no_browser),
                timeout=timeout,
                open_browser=None if no_browser else webbrowser.open,
                port=redirect_port or 0,
            )
    except OSError as exc:
        if redirect_port is None:
            raise
        # the --redirect-port is taken (or not ours to bind)
        raise UsageError(f"--redirect-port {redirect_port}: {exc.strerror or exc}") from None
    except AuthorizationFailed as exc:
        ctx.warn(f"{user.username}: not authorized: {exc}")
        return EXIT_FAILED
    store_refresh_token(ctx.store, manager.box, user.id, token.refresh_token)
    ctx.say(
        f"{user.username}: authorized; the refresh token is stored sealed and the next fetch "
        "uses it"
    )
    state = ctx.store.mailboxes.get(user.id)
    if state is not None and state.paused:
        ctx.say(
            f"the mailbox is still paused ({state.paused_reason}): lift the pause with "
            f"`mail-pipeline imap resume {user.username}`"
        )
    return EXIT_OK


def _authorization_client(
    manager: EmailConfigManager, username: str, flow: str | None
) -> tuple[OAuth2Client, str]:
    """Return the OAuth2 client of ``username``'s stored account (its secret opened) and the
    flow to authorize it with (``flow``, or the provider's default).

    Raises:
        UsageError: no IMAP account or no OAuth2 client; an invalid account; a flow the
            account has no endpoint for, or the device flow for Gmail.
    """
    from mail_pipeline.errors import ConfigError
    from mail_pipeline.intake.imap.account import canonical_imap
    from mail_pipeline.intake.imap.config import source_of
    from mail_pipeline.oauth2.authorization import OAuth2Client
    from mail_pipeline.oauth2.providers import PRESETS, default_flow
    from mail_pipeline.platform.secret_box import is_encrypted
    from mail_pipeline.storage.store import EmailSource

    config = manager.get_email_config(username)
    imap = canonical_imap(config["imap_config"]) if source_of(config) is EmailSource.IMAP else {}
    if not imap.get("oauth2_client_id"):
        raise UsageError(
            f"{username} has no OAuth2 client to authorize: set one with "
            f"`mail-pipeline imap set {username} --provider gmail|microsoft365 --client-id ID`"
        )
    try:
        manager.validate_imap_config(config)
    except ConfigError as exc:
        raise UsageError(f"{username}: {config_problem_text(exc)}") from None
    provider = imap.get("provider")
    device, authorize = imap.get("oauth2_device_endpoint"), imap.get("oauth2_authorize_endpoint")
    try:
        chosen = (
            flow
            or default_flow(provider, device_endpoint=device, authorize_endpoint=authorize).value
        )
    except ConfigError:
        raise UsageError(
            f"{username}'s account has no --device-endpoint and no --authorize-endpoint: set "
            f"one with `mail-pipeline imap set {username} ...`"
        ) from None
    preset = PRESETS.get(provider or "")
    if chosen == "device" and preset is not None and not preset.device_flow_scopes_allowed:
        raise UsageError(
            f"--flow device: {preset.title}'s device flow does not allow the mail scope; "
            "use --flow loopback (the default for it)"
        )
    if chosen == "device" and not device:
        raise UsageError(
            f"--flow device: {username}'s account has no device endpoint (--device-endpoint)"
        )
    if chosen == "loopback" and not authorize:
        raise UsageError(
            f"--flow loopback: {username}'s account has no authorization endpoint "
            "(--authorize-endpoint)"
        )
    secret = imap.get("oauth2_client_secret") or None
    if secret is not None and is_encrypted(secret):
        secret = manager.box.open(secret)
    client = OAuth2Client(
        client_id=str(imap["oauth2_client_id"]),
        client_secret=secret,
        token_endpoint=str(imap["oauth2_token_endpoint"]),
        scopes=tuple(imap.get("oauth2_scopes") or ()),
        device_endpoint=device,
        authorize_endpoint=authorize,
        authorize_params=preset.authorize_params if preset is not None else (),
    )
    return client, chosen


def _show_device_code(ctx: Context, username: str, code: DeviceCode) -> None:
    """Print where to enter the device code, and that the command waits."""
    minutes = max(1, round(code.expires_in / 60))
    ctx.say(
        f"To authorize {username}'s mailbox, open {code.verification_uri} and enter the code "
        f"{code.user_code} (valid {minutes} min), then sign in as the mailbox's owner and "
        "consent."
    )
    if code.verification_uri_complete:
        ctx.say(f"(or open {code.verification_uri_complete})")
    ctx.say("waiting for the sign-in ... (Ctrl-C to stop)")


def _show_authorize_url(ctx: Context, username: str, url: str, no_browser: bool) -> None:
    """Print the authorization URL to open, where it returns to, and that the command waits."""
    from urllib.parse import parse_qs, urlsplit

    back = parse_qs(urlsplit(url).query).get("redirect_uri", ["127.0.0.1"])[0]
    ctx.say(
        f"To authorize {username}'s mailbox, open this URL in a browser that reaches {back} "
        "(this machine, or an SSH tunnel to it), sign in as the mailbox's owner and consent:"
    )
    ctx.say(url)
    opening = "" if no_browser else "opening a browser; "
    ctx.say(f"{opening}waiting for the browser to come back ... (Ctrl-C to stop)")


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
    grant = _grant_json(ctx, user.id, config)
    if as_json:
        shown = {
            "user": user.username,
            "email_config": masked,
            "mailbox": None if state is None else mailbox_json(state),
        }
        if grant is not None:
            shown["oauth2_grant"] = grant
        emit_json(shown)
        return EXIT_OK
    ctx.say(f"IMAP account of {user.username}:")
    ctx.out.print_json(data=masked)
    if grant is not None:
        ctx.say(_grant_line(user.username, grant))
    if state is not None:
        ctx.say(mailbox_state_line(state))
    return EXIT_OK


def _grant_json(ctx: Context, user_id: int, config: dict[str, Any]) -> dict[str, Any] | None:
    """Return the OAuth2 grant state of an account with an OAuth2 client (no token, only
    whether one is stored and when), or None for any other account."""
    imap = config.get("imap_config")
    if not isinstance(imap, dict) or not imap.get("oauth2_client_id"):
        return None
    grant = ctx.store.oauth2_grants.get(user_id)
    if grant is None:
        return {"authorized": False}
    return {
        "authorized": True,
        "authorized_at": iso_time(grant.created_at),
        "updated_at": iso_time(grant.updated_at),
        "refresh_token_rotations": grant.rotated_count,
        "access_token_expires_at": iso_time(grant.expires_at),
    }


def _grant_line(username: str, grant: dict[str, Any]) -> str:
    """Return the grant state as one line for ``imap show``."""
    if not grant["authorized"]:
        return f"OAuth2: not authorized yet: run `mail-pipeline imap authorize {username}`"
    rotations = grant["refresh_token_rotations"]
    return (
        f"OAuth2: authorized {show_time(grant['authorized_at'])}, refresh token rotated "
        f"{rotations} time{'' if rotations == 1 else 's'}, last updated "
        f"{show_time(grant['updated_at'])}"
    )


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
        raise UsageError(config_problem_text(exc)) from None
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
    found = [
        (target.username, target.ok, "; ".join(p.render(OPTION_NAMES) for p in target.problems))
        for target in _manager(ctx).imap_targets()
    ]
    if as_json:
        emit_json(
            [{"user": name, "valid": valid, "problem": problem} for name, valid, problem in found]
        )
        return EXIT_OK
    table = new_table("user", "valid", "problem")
    for name, valid, problem in found:
        table.add_row(name, "yes" if valid else "no", problem)
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
        raise UsageError(f"{user.username}: {config_problem_text(exc)}") from None
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
        parse_process_min_messages=ctx.settings.parse_worker_min_messages,
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
