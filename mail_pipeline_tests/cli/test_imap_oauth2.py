"""``mail-pipeline imap set --provider ...`` and ``imap authorize``: presets fill the account,
mistakes are one line and exit 2, the device flow (a thread approves the code on the local
OAuth2 server) and the loopback flow (a thread plays the browser) store a sealed refresh token
with which a fetch from the test Dovecot succeeds; a declined, expired or timed-out
authorization exits 1 with one line and stores nothing; no secret is ever printed or stored
in clear; ``--help`` imports neither authlib nor requests."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from mail_pipeline.cli.imap import FLOWS, PROVIDERS, SASL_MECHANISMS
from mail_pipeline.oauth2.providers import PRESETS, AuthorizationFlow
from mail_pipeline.platform.secret_box import PREFIX
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.cli.conftest import Result, Run, run_installed
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.fixtures.oauth2_server import OAuth2TestServer, TestClient

SECRET = "cs-the-client-secret-0123456789"


@pytest.fixture
def server() -> Iterator[OAuth2TestServer]:
    """An authorization server without Dovecot, for the flows that store nothing."""
    server = OAuth2TestServer(device_interval=0.05)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def raw(n: int) -> bytes:
    return (
        f"From: bob@example.net\r\nTo: alice@example.org\r\nSubject: oauth2 {n}\r\n"
        f"Message-ID: <oauth2-{n}-{uuid.uuid4().hex}@example.net>\r\n\r\nbody {n}\r\n"
    ).encode()


def stored_imap(store_url: str, username: str) -> dict[str, Any]:
    store = MailStore(store_url)
    try:
        config = store.users.get_setting(username, "email_config") or {}
        imap: dict[str, Any] = config["imap_config"]
        return imap
    finally:
        store.dispose()


def shown_imap(cli: Run, username: str) -> dict[str, Any]:
    result = cli("imap", "show", username, "--json")
    assert result.code == 0, result.err
    imap: dict[str, Any] = json.loads(result.out)["email_config"]["imap_config"]
    return imap


def grant_of(store_url: str, username: str) -> Any:
    store = MailStore(store_url)
    try:
        return store.oauth2_grants.get(store.users.get(username).id)
    finally:
        store.dispose()


def one_error_line(result: Result, code: int, needle: str) -> None:
    assert result.code == code, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("mail-pipeline: ") and needle in lines[0], lines[0]
    assert "Traceback" not in result.err


def test_the_cli_choices_match_the_core() -> None:
    assert set(PROVIDERS) == {*PRESETS, "custom"}
    assert set(FLOWS) == {f.value for f in AuthorizationFlow}
    assert set(SASL_MECHANISMS) == {"xoauth2", "oauthbearer"}


def test_microsoft365_preset_fills_the_account_with_its_tenant(cli: Run, store_url: str) -> None:
    assert cli("users", "add", "alice", "alice@contoso.example").code == 0
    result = cli(
        "imap",
        "set",
        "alice",
        "--provider",
        "microsoft365",
        "--tenant",
        "contoso.onmicrosoft.com",
        "--client-id",
        "app-id-1",
    )
    assert result.code == 0, result.err
    assert "mail-pipeline imap authorize alice" in result.out
    imap = shown_imap(cli, "alice")
    base = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0"
    assert {k: imap[k] for k in ("imap_host", "imap_ssl_port", "security", "username")} == {
        "imap_host": "outlook.office365.com",
        "imap_ssl_port": 993,
        "security": "ssl",
        "username": "alice@contoso.example",
    }
    assert imap["provider"] == "microsoft365" and imap["sasl_mechanism"] == "xoauth2"
    assert imap["oauth2_client_id"] == "app-id-1"
    assert imap["oauth2_token_endpoint"] == f"{base}/token"
    assert imap["oauth2_device_endpoint"] == f"{base}/devicecode"
    assert imap["oauth2_authorize_endpoint"] == f"{base}/authorize"
    assert imap["oauth2_scopes"] == [
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "offline_access",
    ]
    assert not stored_imap(store_url, "alice").get("oauth2_client_secret")  # a public client
    assert not stored_imap(store_url, "alice").get("password")


def test_gmail_preset_seals_the_client_secret_and_keeps_it_when_unchanged(
    cli: Run, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("users", "add", "gina", "gina@gmail.example").code == 0
    monkeypatch.setenv("GOOGLE_SECRET", SECRET)
    args = ("imap", "set", "gina", "--provider", "gmail", "--client-id", "123.apps")
    result = cli(*args, "--client-secret-env", "GOOGLE_SECRET", "--sasl", "oauthbearer")
    assert result.code == 0, result.err
    assert SECRET not in result.out + result.err
    imap = shown_imap(cli, "gina")
    assert imap["imap_host"] == "imap.gmail.com" and imap["sasl_mechanism"] == "oauthbearer"
    assert imap["oauth2_scopes"] == ["https://mail.google.com/"]
    assert imap["oauth2_client_secret"] == "********"
    sealed = stored_imap(store_url, "gina")["oauth2_client_secret"]
    assert sealed.startswith(PREFIX) and SECRET not in sealed

    # Set again with the same client and no secret option: the secret is kept ...
    assert cli(*args, "--folder", "INBOX", "--folder", "Archive").code == 0
    assert stored_imap(store_url, "gina")["oauth2_client_secret"] == sealed
    # ... a new secret from stdin replaces it, another client id drops it.
    assert cli(*args, "--client-secret-stdin", stdin="another-secret\n").code == 0
    assert stored_imap(store_url, "gina")["oauth2_client_secret"] not in ("", sealed)
    assert cli("imap", "set", "gina", "--provider", "gmail", "--client-id", "456").code == 0
    assert not stored_imap(store_url, "gina").get("oauth2_client_secret")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--provider", "gmail"), "needs --client-id"),
        (("--provider", "gmail", "--tenant", "x", "--client-id", "c"), "--tenant is only for"),
        (("--provider", "microsoft365", "--tenant", "../x", "--client-id", "c"), "--tenant"),
        (
            ("--provider", "microsoft365", "--client-id", "c", "--sasl", "oauthbearer"),
            "outlook.office365.com offers only xoauth2",
        ),
        (("--provider", "custom", "--host", "h", "--client-id", "c"), "--token-endpoint"),
        (("--client-id", "c", "--token-endpoint", "https://t.example/token"), "--host is needed"),
        (
            ("--provider", "gmail", "--client-id", "c", "--password-env", "PW"),
            "not both",
        ),
        (
            (
                *("--provider", "gmail", "--client-id", "c"),
                *("--client-secret-stdin", "--client-secret-env", "X"),
            ),
            "only one of --client-secret-stdin, --client-secret-env",
        ),
        (
            ("--provider", "gmail", "--client-id", "c", "--client-secret-env", "UNSET_VAR_X"),
            "UNSET_VAR_X (--client-secret-env) is empty or not set",
        ),
        (
            (
                *("--provider", "custom", "--host", "h", "--client-id", "c"),
                *("--token-endpoint", "http://auth.example.org/token"),
            ),
            "--token-endpoint",
        ),
        (("--provider", "yahoo"), "'yahoo' is not one of"),
        (("--host", "h", "--password-env", "PW", "--sasl", "oauthbearer"), "--sasl is for OAuth2"),
    ],
)
def test_oauth2_mistakes_of_imap_set_are_one_line_and_exit_2(
    cli: Run, store_url: str, args: tuple[str, ...], needle: str
) -> None:
    assert cli("users", "add", "mo", "mo@example.org").code == 0
    one_error_line(cli("imap", "set", "mo", *args), 2, needle)
    assert cli("imap", "show", "mo").code == 2  # nothing was stored


def test_authorize_refuses_accounts_it_cannot_authorize(cli: Run, server: OAuth2TestServer) -> None:
    assert cli("users", "add", "pat", "pat@example.org").code == 0
    one_error_line(cli("imap", "authorize", "pat"), 2, "pat has no OAuth2 client to authorize")
    set_password = ("imap", "set", "pat", "--host", "imap.example.org", "--password-stdin")
    assert cli(*set_password, stdin="pw\n").code == 0
    one_error_line(cli("imap", "authorize", "pat"), 2, "no OAuth2 client")
    assert cli("imap", "set", "pat", "--provider", "gmail", "--client-id", "c").code == 0
    one_error_line(
        cli("imap", "authorize", "pat", "--flow", "device"),
        2,
        "device flow does not allow the mail scope",
    )
    custom = ("--provider", "custom", "--host", "127.0.0.1", "--client-id", "c")
    assert cli("imap", "set", "pat", *custom, "--token-endpoint", server.token_endpoint).code == 0
    one_error_line(cli("imap", "authorize", "pat"), 2, "no --device-endpoint")
    one_error_line(cli("imap", "authorize", "nobody"), 2, "no user")


def approve_in_thread(
    server: OAuth2TestServer, username: str, *, deny: bool = False, expire: bool = False
) -> threading.Thread:
    """Approve (or deny, or expire) the first device code the server hands out, from another
    thread: the user at a browser."""

    def act() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            codes = server.pending_user_codes()
            if codes:
                if deny:
                    server.deny(codes[0])
                elif expire:
                    server.expire_device_codes()
                else:
                    server.approve(codes[0], username)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def assert_no_secret_in_clear(store_url: str, texts: list[str], secrets: set[str]) -> None:
    """No issued secret is in ``texts`` (the command's output) or in any row of the store
    that holds account settings or grants."""
    store = MailStore(store_url)
    try:
        with store.engine.connect() as connection:
            dump = [
                repr(row)
                for table in ("settings", "oauth2_grants")
                for row in connection.execute(text(f"SELECT * FROM {table}"))
            ]
    finally:
        store.dispose()
    leaked = [s for s in secrets if any(s in t for t in texts + dump)]
    assert leaked == []


def set_microsoft_account_on_dovecot(
    cli: Run, name: str, dovecot: DovecotServer, login: str, server: OAuth2TestServer
) -> tuple[TestClient, Result]:
    """Add user ``name`` with a Microsoft 365 account whose IMAP server and endpoints are the
    test Dovecot and the test authorization server (options win over the preset)."""
    client = server.register_client(public=True)  # Microsoft: a public client
    assert cli("users", "add", name, f"{name}@example.org").code == 0
    result = cli(
        "imap",
        "set",
        name,
        "--provider",
        "microsoft365",
        "--host",
        dovecot.host,
        "--port",
        str(dovecot.imaps_port),
        "--ca-file",
        str(dovecot.ca_cert_path),
        "--login",
        login,
        "--client-id",
        client.client_id,
        "--token-endpoint",
        server.token_endpoint,
        "--device-endpoint",
        server.device_endpoint,
    )
    assert result.code == 0, result.err
    return client, result


@pytest.mark.dovecot
def test_device_flow_stores_a_sealed_refresh_token_and_the_fetch_succeeds(
    cli: Run, store_url: str, dovecot: DovecotServer, oauth2_server: OAuth2TestServer
) -> None:
    mailbox = dovecot.new_user()
    for n in range(3):
        dovecot.append(mailbox.username, raw(n), internaldate=dt.datetime.now(dt.UTC))
    client, result = set_microsoft_account_on_dovecot(
        cli, "dana", dovecot, mailbox.username, oauth2_server
    )
    assert json.loads(cli("imap", "show", "dana", "--json").out)["oauth2_grant"] == {
        "authorized": False
    }
    assert "OAuth2: not authorized yet" in cli("imap", "show", "dana").out
    not_yet = cli("imap", "fetch", "dana")
    assert not_yet.code != 0 and "mail-pipeline imap authorize dana" in not_yet.err

    approver = approve_in_thread(oauth2_server, mailbox.username)
    authorized = cli("imap", "authorize", "dana", "--timeout", "30")
    approver.join(timeout=5)

    assert authorized.code == 0, authorized.err
    assert f"open {oauth2_server.verification_uri} and enter the code" in authorized.out
    assert "dana: authorized" in authorized.out
    grant = grant_of(store_url, "dana")
    assert grant is not None and grant.refresh_token.startswith(PREFIX)
    (refresh_token,) = oauth2_server.valid_refresh_tokens(mailbox.username)

    fetched = cli("imap", "fetch", "dana")
    assert fetched.code == 0, fetched.err
    assert "fetched 3, saved 3" in fetched.out
    assert oauth2_server.refresh_count(client_id=client.client_id) == 1
    assert refresh_token not in oauth2_server.valid_refresh_tokens(mailbox.username)  # rotated
    shown = cli("imap", "show", "dana", "--json")
    grant_state = json.loads(shown.out)["oauth2_grant"]
    assert grant_state["authorized"] is True and grant_state["refresh_token_rotations"] == 1
    assert "OAuth2: authorized" in cli("imap", "show", "dana").out
    outputs = [r.out + r.err for r in (result, not_yet, authorized, fetched, shown)]
    assert_no_secret_in_clear(store_url, outputs, oauth2_server.issued_secrets())


@pytest.mark.dovecot
def test_loopback_flow_stores_the_grant_and_oauthbearer_logs_in(
    cli: Run,
    store_url: str,
    dovecot: DovecotServer,
    oauth2_server: OAuth2TestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mailbox = dovecot.new_user()
    dovecot.append(mailbox.username, raw(1), internaldate=dt.datetime.now(dt.UTC))
    client = oauth2_server.register_client()  # Google desktop apps have a client secret
    oauth2_server.authorize_username = mailbox.username
    followed: list[int] = []

    def browser(url: str) -> bool:
        """The user's browser: follow the authorization URL and its redirect (urllib)."""

        def follow() -> None:
            try:
                with urllib.request.urlopen(url, timeout=10) as answer:
                    followed.append(int(answer.status))
            except urllib.error.HTTPError as exc:
                followed.append(exc.code)

        threading.Thread(target=follow, daemon=True).start()
        return True

    monkeypatch.setattr("webbrowser.open", browser)
    monkeypatch.setenv("GOOGLE_SECRET", str(client.client_secret))
    assert cli("users", "add", "gabe", "gabe@example.org").code == 0
    result = cli(
        "imap",
        "set",
        "gabe",
        "--provider",
        "gmail",
        "--host",
        dovecot.host,
        "--port",
        str(dovecot.imaps_port),
        "--ca-file",
        str(dovecot.ca_cert_path),
        "--login",
        mailbox.username,
        "--client-id",
        client.client_id,
        "--client-secret-env",
        "GOOGLE_SECRET",
        "--token-endpoint",
        oauth2_server.token_endpoint,
        "--authorize-endpoint",
        oauth2_server.authorize_endpoint,
        "--sasl",
        "oauthbearer",
    )
    assert result.code == 0, result.err

    authorized = cli("imap", "authorize", "gabe", "--timeout", "30")

    assert authorized.code == 0, authorized.err
    assert followed == [200]
    assert f"{oauth2_server.authorize_endpoint}?response_type=code" in authorized.out
    assert (
        "code_challenge_method=S256" in authorized.out and "access_type=offline" in authorized.out
    )
    assert grant_of(store_url, "gabe") is not None
    tested = cli("imap", "test", "gabe")
    assert tested.code == 0, tested.err
    fetched = cli("imap", "fetch", "gabe")
    assert fetched.code == 0 and "fetched 1, saved 1" in fetched.out, fetched.err
    outputs = [r.out + r.err for r in (result, authorized, tested, fetched)]
    assert_no_secret_in_clear(store_url, outputs, oauth2_server.issued_secrets())


def set_custom_device_account(cli: Run, server: OAuth2TestServer, name: str) -> None:
    client = server.register_client(public=True)
    assert cli("users", "add", name, f"{name}@example.org").code == 0
    result = cli(
        "imap",
        "set",
        name,
        "--provider",
        "custom",
        "--host",
        "127.0.0.1",
        "--client-id",
        client.client_id,
        "--token-endpoint",
        server.token_endpoint,
        "--device-endpoint",
        server.device_endpoint,
        "--scope",
        "imap",
        "--scope",
        "offline_access",
    )
    assert result.code == 0, result.err


@pytest.mark.parametrize(
    ("how", "needle"),
    [
        ("deny", "not authorized: the authorization was declined"),
        ("expire", "expired before it was entered"),
        ("nobody", "was not entered at"),
    ],
)
def test_a_failed_authorization_is_one_line_exit_1_and_stores_nothing(
    cli: Run, store_url: str, server: OAuth2TestServer, how: str, needle: str
) -> None:
    set_custom_device_account(cli, server, "eve")
    approver = None
    if how != "nobody":
        approver = approve_in_thread(server, "eve", deny=how == "deny", expire=how == "expire")
    timeout = "2" if how == "nobody" else "30"
    result = cli("imap", "authorize", "eve", "--timeout", timeout)
    if approver is not None:
        approver.join(timeout=5)
    one_error_line(result, 1, needle)
    assert "nothing was stored" in result.err
    assert grant_of(store_url, "eve") is None
    assert_no_secret_in_clear(store_url, [result.out, result.err], server.issued_secrets())


def test_help_of_the_oauth2_commands_imports_neither_authlib_nor_requests(tmp_path: Path) -> None:
    code = (
        "import sys, json, contextlib, io\n"
        "import mail_pipeline.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    codes = [mail_pipeline.cli.main(a) for a in (['--help'], ['imap', '--help'],\n"
        "             ['imap', 'authorize', '--help'], ['imap', 'set', '--help'])]\n"
        "print(json.dumps({'modules': sorted(sys.modules), 'codes': codes}))\n"
    )
    result = run_installed(cwd=tmp_path, python=code)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["codes"] == [0, 0, 0, 0]
    heavy = ("authlib", "requests", "urllib3", "mail_pipeline.oauth2")
    assert [m for m in data["modules"] if m.split(".")[0] in heavy or m.startswith(heavy)] == []


@pytest.mark.dovecot
def test_revoked_access_pauses_the_mailbox_until_it_is_authorized_again_and_resumed(
    cli: Run,
    dovecot: DovecotServer,
    oauth2_server: OAuth2TestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The operator's story of deploy/README.md, "Revoked access"."""
    monkeypatch.setenv("MAIL_PIPELINE_AUTH_FAILURES_TO_PAUSE", "1")
    oauth2_server.access_token_lifetime = 1  # every fetch refreshes
    mailbox = dovecot.new_user()
    dovecot.append(mailbox.username, raw(1), internaldate=dt.datetime.now(dt.UTC))
    set_microsoft_account_on_dovecot(cli, "rory", dovecot, mailbox.username, oauth2_server)
    approve_in_thread(oauth2_server, mailbox.username)
    assert cli("imap", "authorize", "rory", "--timeout", "30").code == 0
    assert cli("imap", "fetch", "rory").code == 0

    oauth2_server.revoke_grants(mailbox.username)  # the user removed the app's access
    failed = cli("imap", "fetch", "rory")
    assert failed.code == 1
    assert "re-authorize: run `mail-pipeline imap authorize rory`" in failed.err
    assert "mailbox PAUSED after 1 consecutive authentication failures" in failed.err

    approve_in_thread(oauth2_server, mailbox.username)
    again = cli("imap", "authorize", "rory", "--timeout", "30")
    assert again.code == 0, again.err
    assert "still paused" in again.out and "mail-pipeline imap resume rory" in again.out
    assert cli("imap", "resume", "rory").code == 0
    dovecot.append(mailbox.username, raw(2), internaldate=dt.datetime.now(dt.UTC))
    fetched = cli("imap", "fetch", "rory")
    assert fetched.code == 0 and "fetched 1, saved 1" in fetched.out, fetched.err


def test_sasl_applies_to_a_token_command_account(cli: Run, store_url: str) -> None:
    assert cli("users", "add", "tom", "tom@example.org").code == 0
    args = ("--host", "imap.example.org", "--oauth2-token-command", "print-token tom")
    result = cli("imap", "set", "tom", *args, "--sasl", "oauthbearer")
    assert result.code == 0, result.err
    imap = stored_imap(store_url, "tom")
    assert imap["sasl_mechanism"] == "oauthbearer" and not imap.get("oauth2_client_id")
    assert "authorize" not in result.out  # nothing to authorize: the command prints tokens


def test_setting_the_account_again_keeps_the_grant_of_the_same_client_only(
    cli: Run, store_url: str, server: OAuth2TestServer
) -> None:
    set_custom_device_account(cli, server, "kim")
    client_id = stored_imap(store_url, "kim")["oauth2_client_id"]
    approve_in_thread(server, "kim")
    assert cli("imap", "authorize", "kim", "--timeout", "30").code == 0
    common = (
        *("--provider", "custom", "--host", "127.0.0.1"),
        *("--token-endpoint", server.token_endpoint, "--device-endpoint", server.device_endpoint),
    )

    same = cli("imap", "set", "kim", *common, "--client-id", client_id)
    assert same.code == 0, same.err
    assert "kim stays authorized" in same.out
    assert grant_of(store_url, "kim") is not None

    other = cli("imap", "set", "kim", *common, "--client-id", "another-client")
    assert other.code == 0, other.err
    assert f"the authorization of the previous OAuth2 client {client_id} was removed" in other.out
    assert "next: authorize the mailbox with `mail-pipeline imap authorize kim`" in other.out
    assert grant_of(store_url, "kim") is None
