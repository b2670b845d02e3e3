"""The IMAP account schema: the ONE definition of an account's settings and their checks.

An account is stored as the ``imap_config`` of a user's ``email_config`` setting (the whole
shape is in :mod:`mail_pipeline.intake.imap.config`) and used as an :class:`ImapAccount` by the
connection layer. Both go through the same code here:

- :func:`canonical_imap` folds the seed's and the short key names into the canonical ones;
- :func:`account_problems` checks an account's fields and returns every problem found;
  :class:`ImapAccount` raises them, :func:`imap_config_problems` reports them for a stored
  ``imap_config`` (``mail-pipeline imap set`` and ``imap list``, and the loader, use it);
- :func:`account_fields` maps a canonical ``imap_config`` to :class:`ImapAccount`'s fields.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from mail_pipeline.errors import ConfigError
from mail_pipeline.intake.limits import DEFAULT_MAX_MESSAGE_BYTES

__all__ = [
    "ImapAccount",
    "ImapSecurity",
    "PostAction",
    "account_fields",
    "account_problems",
    "canonical_imap",
    "imap_config_problems",
    "max_message_bytes_of",
    "split_token_command",
    "token_problem",
]

#: The credentials an account may have; exactly one must be given.
CREDENTIALS = ("password", "oauth2_token", "oauth2_token_command")


class ImapSecurity(StrEnum):
    """How the connection is protected."""

    SSL = "ssl"  #: TLS from the first byte (IMAPS, usually port 993)
    STARTTLS = "starttls"  #: plain connect, then STARTTLS before login (usually port 143)
    PLAIN = "plain"  #: no TLS at all: only when configured on purpose (loopback, tests)


class PostAction(StrEnum):
    """What to do with a message on the server after it is committed to the store."""

    NONE = "none"
    MARK_SEEN = "mark_seen"
    MOVE = "move"
    DELETE = "delete"


@dataclass(frozen=True)
class ImapAccount:
    """The connection settings of one IMAP mailbox.

    Exactly one kind of credential must be given: ``password``, or OAuth2 as either
    ``oauth2_token`` (an access token) or ``oauth2_token_command`` (a command whose standard
    output is an access token; split with :func:`shlex.split`, run without a shell).

    ``ca_file`` adds a CA bundle to the system's trusted CAs (for servers with a private CA);
    ``verify_tls=False`` turns certificate and host name checks off entirely.

    Raises:
        ConfigError: with every problem :func:`account_problems` finds (an empty host or
            username, a port outside 1..65535, an unknown ``security``, no credential or more
            than one kind, an empty or malformed token, an empty ``ca_file`` or a timeout that
            is not a positive number), joined by "; ".
    """

    host: str
    port: int
    username: str
    security: ImapSecurity = ImapSecurity.SSL
    password: str | None = field(default=None, repr=False)
    oauth2_token: str | None = field(default=None, repr=False)
    oauth2_token_command: str | None = None
    verify_tls: bool = True
    ca_file: str | None = None
    connect_timeout: float = 15.0
    read_timeout: float = 60.0

    def __post_init__(self) -> None:
        problems = account_problems({f.name: getattr(self, f.name) for f in fields(self)})
        if problems:
            raise ConfigError("; ".join(problems))
        object.__setattr__(self, "security", ImapSecurity(str(self.security).lower()))

    @property
    def uses_oauth2(self) -> bool:
        """True when the account logs in with XOAUTH2, False for a password LOGIN."""
        return self.password is None

    @property
    def endpoint(self) -> str:
        """``username@host:port (security)``, for messages and logs (no secrets)."""
        return f"{self.username}@{self.host}:{self.port} ({self.security.value})"


def token_problem(token: object, username: object) -> str | None:
    """Return why ``token`` cannot be sent in an XOAUTH2 string, or None when it can."""
    if not isinstance(token, str) or token == "":
        return f"IMAP account {username!r}: the OAuth2 token is empty"
    if any(ch.isspace() or ch == "\x01" or not ch.isprintable() for ch in token):
        return (
            f"IMAP account {username!r}: the OAuth2 token contains whitespace or control characters"
        )
    return None


def split_token_command(command: object) -> list[str]:
    """Split a token command like a POSIX shell would, without running a shell.

    Returns:
        The command's argument vector (never empty).

    Raises:
        ConfigError: the command is not a string, is empty or cannot be split (unbalanced
            quotes).
    """
    if not isinstance(command, str):
        raise ConfigError("oauth2_token_command must be a string")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(f"oauth2_token_command cannot be parsed: {exc}") from None
    if not argv:
        raise ConfigError("oauth2_token_command is empty")
    return argv


def account_problems(values: Mapping[str, Any]) -> list[str]:
    """Check an account's fields, keyed by :class:`ImapAccount`'s field names.

    A missing credential or ``ca_file`` is None; missing timeouts are not checked (an
    :class:`ImapAccount` always has them).

    Returns:
        Every problem found, in field order; [] when the fields make a valid account.
    """
    problems: list[str] = []
    host, port, username = values.get("host"), values.get("port"), values.get("username")
    if not isinstance(host, str) or not host.strip():
        problems.append("IMAP host (imap_host) must be a non-empty string")
    elif host != host.strip():
        problems.append(f"IMAP host (imap_host) {host!r} has surrounding whitespace")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        problems.append(f"IMAP port (imap_ssl_port) must be a number from 1 to 65535, not {port!r}")
    if not isinstance(username, str) or not username.strip():
        problems.append("IMAP username must be a non-empty string")
    security = values.get("security", ImapSecurity.SSL)
    if str(security).lower() not in {s.value for s in ImapSecurity}:
        allowed = ", ".join(s.value for s in ImapSecurity)
        problems.append(f"IMAP security {security!r} is not one of: {allowed}")

    password, token = values.get("password"), values.get("oauth2_token")
    command = values.get("oauth2_token_command")
    who = f"IMAP account {username!r}"
    if password is None and token is None and command is None:
        problems.append(
            f"{who}: a credential is needed: give a password or an OAuth2 token "
            "(oauth2_token or oauth2_token_command)"
        )
    elif password is not None and (token is not None or command is not None):
        problems.append(f"{who}: give either a password or OAuth2, not both")
    if token is not None and command is not None:
        problems.append(f"{who}: give either oauth2_token or oauth2_token_command, not both")
    if password is not None and (not isinstance(password, str) or password == ""):
        problems.append(f"{who}: the password is empty")
    if token is not None and (problem := token_problem(token, username)) is not None:
        problems.append(problem)
    if command is not None:
        try:
            split_token_command(command)
        except ConfigError as exc:
            problems.append(str(exc))
    ca_file = values.get("ca_file")
    if ca_file is not None and (not isinstance(ca_file, str) or not ca_file):
        problems.append("ca_file must be a non-empty path when given")
    for name in ("connect_timeout", "read_timeout"):
        if name not in values:
            continue
        value = values[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            problems.append(f"{name} must be a positive number of seconds, got {value!r}")
    return problems


def _first(mapping: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if mapping.get(name) not in (None, ""):
            return mapping[name]
    return None


def canonical_imap(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``raw`` with the seed's and the short key names folded into the canonical ones.

    ``host`` becomes ``imap_host``; ``port``/``imap_port`` become ``imap_ssl_port`` (default 993
    for ssl, 143 otherwise); ``use_ssl`` becomes ``security`` (both are kept, in agreement);
    ``delete_after_fetch`` becomes ``post_action: delete``.
    """
    imap = dict(raw)
    host = _first(imap, "imap_host", "host")
    port = _first(imap, "imap_ssl_port", "imap_port", "port")
    for alias in ("host", "port", "imap_port"):
        imap.pop(alias, None)
    imap["imap_host"] = host
    security = imap.get("security")
    if security is None:
        use_ssl = imap.get("use_ssl", True)
        security = ImapSecurity.SSL.value if use_ssl else ImapSecurity.STARTTLS.value
    imap["security"] = str(security).lower()
    imap["use_ssl"] = imap["security"] == ImapSecurity.SSL.value
    if port is None:
        port = 993 if imap["security"] == ImapSecurity.SSL.value else 143
    imap["imap_ssl_port"] = port
    if imap.pop("delete_after_fetch", False) and imap.get("post_action") in (None, "none"):
        imap["post_action"] = PostAction.DELETE.value
    imap.setdefault("post_action", PostAction.NONE.value)
    return imap


def account_fields(imap: Mapping[str, Any]) -> dict[str, Any]:
    """Return the :class:`ImapAccount` fields of a canonical ``imap_config`` (secrets as
    stored; an empty credential counts as none). Timeouts are not stored: not included."""
    values: dict[str, Any] = {
        "host": imap.get("imap_host"),
        "port": imap.get("imap_ssl_port"),
        "username": imap.get("username"),
        "security": imap.get("security", ImapSecurity.SSL.value),
        "verify_tls": bool(imap.get("verify_tls", True)),
        "ca_file": imap.get("ca_file"),
    }
    for name in CREDENTIALS:
        values[name] = imap.get(name) or None
    return values


def imap_config_problems(imap: Mapping[str, Any]) -> list[str]:
    """Check a canonical ``imap_config``: the account's fields (:func:`account_problems`), the
    post-action and its ``move_to``, and ``max_message_bytes``.

    Returns:
        Every problem found; [] when the ``imap_config`` is valid.
    """
    problems = account_problems(account_fields(imap))
    try:
        action = PostAction(imap.get("post_action") or "none")
        if action is PostAction.MOVE and not imap.get("move_to"):
            problems.append("post_action 'move' needs move_to (a folder)")
    except ValueError:
        problems.append(f"post_action must be one of {', '.join(PostAction)}")
    limit = imap.get("max_message_bytes")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        problems.append(f"max_message_bytes must be a whole number of bytes >= 1, not {limit!r}")
    return problems


def max_message_bytes_of(imap: Mapping[str, Any]) -> int:
    """Return the size limit of a valid ``imap_config`` (default: the spool's limit)."""
    limit = imap.get("max_message_bytes")
    return DEFAULT_MAX_MESSAGE_BYTES if limit is None else int(limit)
