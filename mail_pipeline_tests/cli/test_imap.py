"""``mail-pipeline imap``: set/show/list/resume, and ``fetch`` against a real Dovecot."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import pytest

from mail_pipeline.storage.store import EmailSource, MailStore, TaskStatus
from mail_pipeline_tests.cli.conftest import Run
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.fixtures.faults import StorageFault


def raw(n: int) -> bytes:
    return (
        f"From: bob@example.net\r\nTo: alice@example.org\r\nSubject: cli {n}\r\n"
        f"Message-ID: <cli-{n}-{uuid.uuid4().hex}@example.net>\r\n\r\nbody {n}\r\n"
    ).encode()


def with_attachment(n: int) -> bytes:
    return (
        f"From: bob@example.net\r\nTo: alice@example.org\r\nSubject: cli {n}\r\n"
        f"Message-ID: <cli-att-{n}-{uuid.uuid4().hex}@example.net>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        "Content-Type: text/plain\r\n\r\nbody\r\n--b\r\nContent-Type: text/plain\r\n"
        f'Content-Disposition: attachment; filename="f{n}.txt"\r\n\r\nfile {n}\r\n--b--\r\n'
    ).encode()


def set_account(cli: Run, dovecot: DovecotServer, password: str, name: str, *options: str) -> None:
    """Add user ``name`` and give it an IMAP account on ``dovecot`` (plus ``options``)."""
    assert cli("users", "add", name, f"{name}@example.org").code == 0
    result = cli(
        "imap",
        "set",
        name,
        "--host",
        dovecot.host,
        "--port",
        str(dovecot.imaps_port),
        "--login",
        name,
        "--ca-file",
        str(dovecot.ca_cert_path),
        "--password-stdin",
        *options,
        stdin=password + "\n",
    )
    assert result.code == 0, result.err


@pytest.mark.dovecot
def test_fetch_stores_mail_and_completes_the_task(
    cli: Run, dovecot: DovecotServer, store_url: str
) -> None:
    user = dovecot.new_user()
    for n in range(5):
        dovecot.append(user.username, raw(n), internaldate=dt.datetime.now(dt.UTC))
    set_account(cli, dovecot, user.password, user.username)
    assert cli("imap", "show", user.username).code == 0
    assert user.username in cli("imap", "list").out
    assert cli("imap", "test", user.username).code == 0

    result = cli("imap", "fetch", user.username, "--batch-size", "2")

    assert result.code == 0, result.err
    assert "fetched 5, saved 5, duplicates 0, failed 0" in result.out
    assert result.err == ""
    store = MailStore(store_url)
    try:
        (task,) = store.tasks.recent(source=EmailSource.IMAP)
        assert task.status is TaskStatus.COMPLETED
        assert (task.counters.fetched, task.counters.saved) == (5, 5)
        assert store.messages.count() == 5
    finally:
        store.dispose()
    again = cli("imap", "fetch", user.username)
    assert again.code == 0 and "fetched 0" in again.out


@pytest.mark.dovecot
def test_fetch_with_a_wrong_password_exits_1_with_one_line(
    cli: Run, dovecot: DovecotServer, store_url: str
) -> None:
    user = dovecot.new_user()
    wrong = "Not-The-Password-42"
    set_account(cli, dovecot, wrong, user.username)

    result = cli("imap", "fetch", user.username)

    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "auth error" in lines[0] and wrong not in result.err
    store = MailStore(store_url)
    try:
        (task,) = store.tasks.recent(source=EmailSource.IMAP)
        assert task.status is TaskStatus.FAILED and "auth" in task.error_message
        assert wrong not in task.error_message
    finally:
        store.dispose()


@pytest.mark.dovecot
def test_manual_fetches_feed_the_circuit_breaker(
    cli: Run, dovecot: DovecotServer, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAIL_PIPELINE_AUTH_FAILURES_TO_PAUSE", "2")
    user = dovecot.new_user()
    set_account(cli, dovecot, "Wrong-Password-7", user.username)
    assert cli("imap", "fetch", user.username).code == 1
    second = cli("imap", "fetch", user.username)
    assert second.code == 1
    lines = second.err.strip().splitlines()
    assert len(lines) == 1 and "PAUSED" in lines[0] and "Wrong-Password-7" not in lines[0]
    store = MailStore(store_url)
    try:
        (state,) = store.mailboxes.all(paused_only=True)
        assert state.consecutive_auth_failures == 2
    finally:
        store.dispose()


@pytest.mark.dovecot
def test_set_max_message_bytes_leaves_a_larger_message_on_the_server(
    cli: Run, dovecot: DovecotServer, store_url: str
) -> None:
    user = dovecot.new_user()
    name = user.username
    dovecot.append(name, raw(1), internaldate=dt.datetime.now(dt.UTC))
    big = raw(2) + (b"x" * 998 + b"\r\n") * 200  # ~200 kB
    big_uid = dovecot.append(name, big, internaldate=dt.datetime.now(dt.UTC))
    set_account(cli, dovecot, user.password, name, "--max-message-bytes", "102400")
    shown = cli("imap", "show", name, "--json")
    assert json.loads(shown.out)["email_config"]["imap_config"]["max_message_bytes"] == 102400

    fetched = cli("imap", "fetch", name)

    assert fetched.code == 0, fetched.err
    assert "saved 1" in fetched.out and "1 too large" in fetched.out
    assert (
        f"failed: folder 'INBOX' UID {big_uid}: too_large: message is {len(big)} bytes, "
        "the limit is 102400 bytes"
    ) in " ".join(fetched.out.split())
    assert dovecot.uids(name)[-1] == big_uid
    store = MailStore(store_url)
    try:
        assert store.messages.count() == 1
    finally:
        store.dispose()
    assert cli("imap", "set", name, "--host", "h", "--max-message-bytes", "0").code == 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("imap", "fetch", "nobody"), "no user"),
        (("imap", "fetch", "x", "--batch-size", "0"), "--batch-size"),
    ],
)
def test_fetch_usage_errors_exit_2(cli: Run, args: tuple[str, ...], needle: str) -> None:
    result = cli(*args)
    assert result.code == 2 and needle in result.err
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.dovecot
def test_fetch_with_a_storage_fault_exits_1_and_fails_the_task(
    cli: Run,
    dovecot: DovecotServer,
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
    storage_fault: StorageFault,
) -> None:
    """An environment fault is a failed run (exit 1), not a usage error, and not bad mail."""
    monkeypatch.setenv("MAIL_PIPELINE_ATTACHMENT_ROOT", str(storage_fault.path))
    user = dovecot.new_user()
    for n in range(3):
        dovecot.append(user.username, with_attachment(n), internaldate=dt.datetime.now(dt.UTC))
    set_account(cli, dovecot, user.password, user.username)
    storage_fault.inject()

    result = cli("imap", "fetch", user.username)

    assert result.code == 1
    assert "StorageUnavailable" not in result.out and "attachment" in result.err
    store = MailStore(store_url)
    try:
        (task,) = store.tasks.recent(source=EmailSource.IMAP)
        assert task.status is TaskStatus.FAILED and "StorageUnavailable" in task.error_message
        assert store.messages.count() == 0
        storage_fault.clear()
        again = cli("imap", "fetch", user.username)
        assert again.code == 0, again.err
        assert "fetched 3, saved 3, duplicates 0, failed 0" in again.out
        assert store.messages.count() == 3
    finally:
        store.dispose()


def test_imap_show_and_resume(cli: Run, store_url: str) -> None:
    store = MailStore(store_url)
    user = store.users.add("ivy", "ivy@example.org")
    assert (
        cli(
            "imap", "set", "ivy", "--host", "imap.example.org", "--password-stdin", stdin="secret\n"
        ).code
        == 0
    )
    assert "mailbox:" not in cli("imap", "show", "ivy").out  # never fetched
    for _ in range(3):
        store.mailboxes.record_failure(
            user.id, "auth", "login refused", pause_after_auth_failures=3
        )
    shown = cli("imap", "show", "ivy")
    assert shown.code == 0 and "mailbox: PAUSED since" in shown.out
    assert "resume with: mail-pipeline imap resume ivy" in shown.out
    assert "secret" not in shown.out
    resumed = cli("imap", "resume", "ivy")
    assert resumed.code == 0 and "ivy: resumed" in resumed.out
    assert "mailbox: active" in cli("imap", "show", "ivy").out
    store.dispose()


def test_imap_set_show_masks_the_password(cli: Run) -> None:
    cli("users", "add", "alice", "alice@example.org")
    result = cli(
        "imap",
        "set",
        "alice",
        "--host",
        "imap.example.org",
        "--password-stdin",
        stdin="s3cret-pass\n",
    )
    assert result.code == 0, result.err
    assert "s3cret-pass" not in result.out
    shown = cli("imap", "show", "alice", "--json")
    assert shown.code == 0 and "s3cret-pass" not in shown.out
    data = json.loads(shown.out)
    assert data["user"] == "alice" and data["mailbox"] is None
    config = data["email_config"]
    assert config["imap_config"]["password"] == "********"
    assert config["imap_config"]["imap_host"] == "imap.example.org"
    assert config["imap_config"]["imap_ssl_port"] == 993
    listing = cli("imap", "list")
    assert "alice" in listing.out and "yes" in listing.out
    assert json.loads(cli("imap", "list", "--json").out) == [
        {"user": "alice", "valid": True, "problem": ""}
    ]
    human = cli("imap", "show", "alice")
    assert human.out.startswith("IMAP account of alice:") and "s3cret-pass" not in human.out


def test_imap_set_without_a_secret_source(cli: Run) -> None:
    cli("users", "add", "alice", "alice@example.org")
    result = cli("imap", "set", "alice", "--host", "imap.example.org", stdin="")
    assert result.code == 2 and "--password-stdin" in result.err


def test_the_choices_are_the_account_values() -> None:
    from mail_pipeline.cli.imap import POST_ACTIONS, SECURITIES
    from mail_pipeline.intake.imap.account import ImapSecurity, PostAction

    assert tuple(m.value for m in ImapSecurity) == SECURITIES
    assert tuple(p.value for p in PostAction) == POST_ACTIONS


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (("--port", "70000"), "--port"),
        (("--post-action", "move"), "--post-action move needs --move-to FOLDER"),
        (("--filter", "junk"), "--filter"),
        (("--since", "tomorrow"), "--since"),
        (("--max-age-days", "-1"), "--max-age-days"),
        (("--password-stdin", "--password-env", "X"), "only one of"),
    ],
)
def test_imap_set_mistakes_are_one_line_naming_the_option(
    cli: Run, options: tuple[str, ...], needle: str
) -> None:
    cli("users", "add", "alice", "alice@example.org")
    result = cli("imap", "set", "alice", "--host", "imap.example.org", *options, stdin="pw\n")
    assert result.code == 2, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.err
    assert "imap_ssl_port" not in lines[0] and "user 1" not in lines[0]


def _no_records(store_url: str) -> None:
    store = MailStore(store_url)
    try:
        assert store.tasks.recent() == []
        assert store.mailboxes.all() == []
    finally:
        store.dispose()


def test_fetch_without_an_account_is_a_usage_error_and_records_nothing(
    cli: Run, store_url: str
) -> None:
    cli("users", "add", "alice", "alice@example.org")
    result = cli("imap", "fetch", "alice")
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "alice has no IMAP account" in lines[0]
    assert "mail-pipeline imap set alice" in lines[0] and "user 1" not in lines[0]
    _no_records(store_url)


def test_fetch_refuses_a_paused_mailbox_unless_forced(cli: Run, store_url: str) -> None:
    from mail_pipeline_tests.fixtures.servers import free_port

    store = MailStore(store_url)
    user = store.users.add("ivy", "ivy@example.org")
    store.dispose()
    port = str(free_port())  # nothing listens there: a forced fetch fails to connect
    options = ("--host", "127.0.0.1", "--port", port, "--password-stdin")
    assert cli("imap", "set", "ivy", *options, stdin="secret\n").code == 0
    store = MailStore(store_url)
    for _ in range(3):
        store.mailboxes.record_failure(
            user.id, "auth", "login refused", pause_after_auth_failures=3
        )
    refused = cli("imap", "fetch", "ivy")
    assert refused.code == 2
    lines = refused.err.strip().splitlines()
    assert len(lines) == 1 and "paused" in lines[0] and "--force" in lines[0]
    assert "mail-pipeline imap resume ivy" in lines[0]
    assert store.tasks.recent() == []
    forced = cli("imap", "fetch", "ivy", "--force")
    assert forced.code == 1, forced
    (task,) = store.tasks.recent()
    assert task.status is TaskStatus.FAILED and task.user_id == user.id
    assert len(forced.err.strip().splitlines()) == 1 and "ivy:" in forced.err
    store.dispose()


#: The fields whose name in messages is not an option: no option of ``imap set`` sets them
#: (the blocks ``imap_config`` and ``filter_config`` as a whole, and ``oauth2_token``, which
#: only a config stored by other means has), so they keep their stored name.
NO_OPTION = ("imap_config", "oauth2_token", "filter_config")

#: An OAuth2 client account of one's own (``--provider custom``), with a good token endpoint.
CUSTOM = ("--provider", "custom", "--host", "h", "--client-id", "c")
GOOD_TOKEN_URL = ("--token-endpoint", "https://auth.example.org/token")
PW = ("--host", "h", "--password-stdin")

#: field -> (``imap set`` options that get that field wrong, standard input, whether the
#: account schema finds the mistake rather than Click or the command's own checks).
SET_MISTAKES: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "imap_host": (("--host", " imap.example.org", "--password-stdin"), "pw\n", False),
    "imap_ssl_port": ((*PW, "--port", "70000"), "pw\n", False),
    "username": ((*PW, "--login", "  "), "pw\n", True),
    "security": ((*PW, "--security", "tls"), "pw\n", False),
    "password": (PW, "\n", True),
    "oauth2_token_command": (("--host", "h", "--oauth2-token-command", "cmd 'x"), "", True),
    "oauth2_client_id": (("--provider", "gmail", "--client-id", " "), "", False),
    "oauth2_client_secret": (
        ("--provider", "gmail", "--client-id", "c", "--client-secret-stdin"),
        "\n",
        False,
    ),
    "oauth2_token_endpoint": ((*CUSTOM, "--token-endpoint", "http://auth.example.org/t"), "", True),
    "oauth2_device_endpoint": (
        (*CUSTOM, *GOOD_TOKEN_URL, "--device-endpoint", "http://auth.example.org/d"),
        "",
        True,
    ),
    "oauth2_authorize_endpoint": (
        (*CUSTOM, *GOOD_TOKEN_URL, "--authorize-endpoint", "ftp://auth.example.org/a"),
        "",
        True,
    ),
    "oauth2_scopes": ((*CUSTOM, *GOOD_TOKEN_URL, "--scope", "two words"), "", True),
    "sasl_mechanism": (
        ("--host", "h", "--oauth2-token-command", "t", "--sasl", "plain"),
        "",
        False,
    ),
    "provider": (("--provider", "yahoo", "--client-id", "c"), "", False),
    "post_action": ((*PW, "--post-action", "later"), "pw\n", False),
    "move_to": ((*PW, "--post-action", "move"), "pw\n", False),
    "max_message_bytes": ((*PW, "--max-message-bytes", "0"), "pw\n", False),
    "max_age_days": ((*PW, "--max-age-days", "-1"), "pw\n", False),
    "since": ((*PW, "--since", "tomorrow"), "pw\n", False),
    "filters": ((*PW, "--filter", "junk"), "pw\n", False),
    "folders": ((*PW, "--folder", ""), "pw\n", True),
}

#: The fields ``imap set`` cannot get wrong: those of NO_OPTION, and ``ca_file`` (an empty
#: ``--ca-file`` means none).
NOT_BY_SET = (*NO_OPTION, "ca_file")


def _stored_labels_in(text: str) -> list[str]:
    """Return the stored fields' labels (``IMAP port (imap_ssl_port)``, ``move_to``) that
    ``text`` shows where the command line has an option name of its own. Labels that are
    plain words (password, provider, since, filter, folders) are left out: English uses them
    too."""
    from mail_pipeline.cli.imap import OPTION_NAMES
    from mail_pipeline.intake.imap.problems import FIELD_LABELS

    return [
        label
        for field, label in FIELD_LABELS.items()
        if field in OPTION_NAMES
        and OPTION_NAMES[field] != label
        and ("_" in label or label.startswith("IMAP "))
        and re.search(rf"(?<![\w-]){re.escape(label)}(?![\w-])", text)
    ]


def test_every_stored_field_has_a_name_and_each_name_is_an_option_of_imap_set() -> None:
    """A field added to the config's problems without an option name here fails."""
    from mail_pipeline.cli.imap import OPTION_NAMES, set_config
    from mail_pipeline.intake.imap.problems import STORED_FIELDS

    assert set(OPTION_NAMES) == set(STORED_FIELDS)
    options = {opt for param in set_config.params for opt in param.opts}
    for field, name in OPTION_NAMES.items():
        if field in NO_OPTION:
            assert name == field
        else:
            assert set(name.split("/")) <= options, (field, name)
    assert set(SET_MISTAKES) == set(STORED_FIELDS) - set(NOT_BY_SET)


@pytest.mark.parametrize("field", sorted(SET_MISTAKES))
def test_imap_set_names_the_option_of_each_wrong_field(cli: Run, field: str) -> None:
    from mail_pipeline.cli.imap import OPTION_NAMES

    options, stdin, by_schema = SET_MISTAKES[field]
    cli("users", "add", "alice", "alice@example.org")
    result = cli("imap", "set", "alice", *options, stdin=stdin)
    assert result.code == 2, result
    (line,) = result.err.strip().splitlines()
    assert any(option in line for option in OPTION_NAMES[field].split("/")), line
    assert ("invalid IMAP config: " in line) is by_schema, line
    assert _stored_labels_in(line) == [], line
    assert cli("imap", "show", "alice").code == 2  # nothing was stored


def test_imap_list_and_fetch_name_the_options_of_every_stored_field(
    cli: Run, store_url: str
) -> None:
    """A config stored by other means, wrong in any field: ``imap list`` and ``imap fetch``
    name the field by its option, with the words of the account schema."""
    from mail_pipeline.cli.imap import OPTION_NAMES
    from mail_pipeline_tests.intake.imap.bad_configs import BAD_CONFIGS, bad_config

    store = MailStore(store_url)
    try:
        for field in BAD_CONFIGS:
            store.users.add(f"u-{field}", f"u-{field}@example.org")
            store.users.set_setting(f"u-{field}", "email_config", bad_config(field))
    finally:
        store.dispose()
    listed = {row["user"]: row for row in json.loads(cli("imap", "list", "--json").out)}
    assert set(listed) == {f"u-{field}" for field in BAD_CONFIGS}
    for field in BAD_CONFIGS:
        name = f"u-{field}"
        problem = listed[name]["problem"]
        assert listed[name]["valid"] is False
        if field != "oauth2_token":  # its sentence says "the OAuth2 token"
            assert OPTION_NAMES[field] in problem, (field, problem)
        assert _stored_labels_in(problem) == [], (field, problem)
        fetched = cli("imap", "fetch", name)
        assert fetched.code == 2, fetched
        (line,) = fetched.err.strip().splitlines()
        assert line.endswith(f"{name}: invalid IMAP config: {' '.join(problem.split())}"), line
    table = cli("imap", "list").out
    assert "--port must be a number from 1 to 65535" in table
    assert _stored_labels_in(table) == []
    tested = cli("imap", "test", "u-move_to")
    assert tested.code == 2 and "--post-action 'move' needs --move-to (a folder)" in tested.err
    _no_records(store_url)
