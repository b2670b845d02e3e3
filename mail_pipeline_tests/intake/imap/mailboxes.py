"""Helpers of the IMAP tests: a test message and accounts for the Dovecot test users."""

from __future__ import annotations

import traceback
from typing import Any

from mail_pipeline.intake.imap.account import ImapAccount, ImapSecurity
from mail_pipeline_tests.fixtures.dovecot import DovecotServer, MailUser

RAW = (
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hello\r\n"
    b"Message-ID: <m1@x>\r\n\r\nbody\r\n"
)


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
