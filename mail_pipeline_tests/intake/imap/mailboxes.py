"""Helpers of the IMAP tests: test messages, accounts and Dovecot users tied to store users,
and a recorder of the IMAP commands sent (their fixtures are in this package's
``conftest.py``)."""

from __future__ import annotations

import datetime as dt
import traceback
import uuid
from typing import Any

from mail_pipeline.intake.imap.account import ImapAccount, ImapSecurity
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.results import ErrorKind, MailboxResult
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.fixtures.dovecot import DovecotServer, MailUser

SECRET = "a passphrase for the imap fetcher tests"
NOW = dt.datetime.now(dt.UTC)
OLD = NOW - dt.timedelta(days=30)
#: The per-account size limit of the too-large tests.
LIMIT = 100 * 1024
RAW = (
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hello\r\n"
    b"Message-ID: <m1@x>\r\n\r\nbody\r\n"
)


def message(
    n: int,
    *,
    subject: str | None = None,
    sender: str = "bob@example.net",
    message_id: str | None = None,
    body: str = "",
) -> bytes:
    """A small RFC 5322 message with a unique Message-ID."""
    mid = message_id or f"<m{n}-{uuid.uuid4().hex}@example.net>"
    return (
        f"From: Bob <{sender}>\r\nTo: alice@example.org\r\n"
        f"Subject: {subject or f'message {n}'}\r\nMessage-ID: {mid}\r\n"
        f"Date: Tue, 01 Sep 2026 10:00:00 +0200\r\n\r\nbody {n} {body}\r\n"
    ).encode()


def with_attachment(raw: bytes, name: str) -> bytes:
    """``raw`` (a :func:`message`) as multipart with a small text attachment called ``name``."""
    head, _, body = raw.partition(b"\r\n\r\n")
    return (
        head + b'\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"'
        b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        + body
        + b'--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename="'
        + name.encode()
        + b'"\r\n\r\ncontent of '
        + name.encode()
        + b"\r\n--b--\r\n"
    )


def big_message(n: int, size: int = 300 * 1024) -> bytes:
    """A message of exactly ``size`` bytes (CRLF lines, as IMAP counts RFC822.SIZE)."""
    head = message(n, subject=f"big {n}")
    line = b"x" * 998 + b"\r\n"
    body = line * ((size - len(head)) // len(line))
    tail = b"y" * (size - len(head) - len(body) - 2) + b"\r\n"
    raw = head + body + tail
    assert len(raw) == size
    return raw


class Mailbox:
    """A Dovecot test user tied to a store user with an IMAP config."""

    def __init__(
        self,
        server: DovecotServer,
        store: MailStore,
        configs: EmailConfigManager,
        mail_user: MailUser,
        **options: Any,
    ) -> None:
        self.server = server
        self.mail_user = mail_user
        self.name = mail_user.username
        self.store_user = store.users.add(self.name, f"{self.name}@example.org")
        self.id = self.store_user.id
        self.configure(configs, **options)

    def configure(
        self,
        configs: EmailConfigManager,
        *,
        password: str | None = None,
        port: int | None = None,
        ca_file: str | None = None,
        folders: tuple[str, ...] = ("INBOX",),
        max_age_days: int | None = 7,
        filters: tuple[str, ...] = (),
        post_action: str = "none",
        move_to: str | None = None,
        max_message_bytes: int | None = None,
    ) -> None:
        imap: dict[str, Any] = {
            "imap_host": self.server.host,
            "imap_ssl_port": port or self.server.imaps_port,
            "security": "ssl",
            "username": self.name,
            "password": password or self.mail_user.password,
            "ca_file": ca_file or str(self.server.ca_cert_path),
            "post_action": post_action,
            "move_to": move_to,
        }
        if max_message_bytes is not None:
            imap["max_message_bytes"] = max_message_bytes
        configs.update_fetch_config(
            self.id,
            {
                "imap_config": imap,
                "filter_config": {
                    "folders": list(folders),
                    "max_age_days": max_age_days,
                    "filters": list(filters),
                },
            },
        )

    def append(
        self,
        raw: bytes,
        folder: str = "INBOX",
        when: dt.datetime | None = None,
        flags: tuple[str, ...] = (),
    ) -> int:
        return self.server.append(
            self.name, raw, folder=folder, internaldate=when or NOW, flags=flags
        )


def stored_subjects(store: MailStore, user_id: int) -> list[str]:
    return sorted(m.subject for m in store.messages.summaries(user_id))


def assert_ok(result: MailboxResult) -> None:
    assert result.ok, result.error
    assert result.error == "" and result.error_kind is ErrorKind.NONE


class CommandLog:
    """Records the IMAP command names every imaplib connection sends (all traffic goes
    through ``imaplib.IMAP4.send``, imapclient's own command writer included)."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def names(self) -> list[str]:
        return [c for c in self.commands if c not in ("LOGIN", "CAPABILITY", "LOGOUT")]


def account_for(
    server: DovecotServer, user: MailUser, security: ImapSecurity = ImapSecurity.SSL, **kw: Any
) -> ImapAccount:
    """An account for ``user`` on ``server``, trusting the test CA unless told otherwise."""
    port = server.imaps_port if security is ImapSecurity.SSL else server.imap_port
    kw.setdefault("ca_file", str(server.ca_cert_path))
    if "oauth2_token" not in kw and "oauth2_token_command" not in kw:
        kw.setdefault("password", user.password)
    kw.setdefault("connect_timeout", 5.0)
    kw.setdefault("read_timeout", 10.0)
    return ImapAccount(server.host, port, user.username, security=security, **kw)


def full_text(exc: BaseException) -> str:
    """What a traceback of ``exc`` would say about the exceptions: every message and repr in
    its chain (not the source lines, which hold the test's own literals)."""
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 40:
        parts += traceback.format_exception_only(current)
        parts += [repr(current), repr(current.args)]
        current = current.__cause__ or current.__context__
    return "".join(parts)
