"""The IMAP account schema: the ONE definition of an account's settings and their checks.

An account is stored as the ``imap_config`` of a user's ``email_config`` setting (the whole
shape is in :mod:`mail_pipeline.intake.imap.config`) and used as an :class:`ImapAccount` by the
connection layer. Both go through the same code here:

- :func:`canonical_imap` folds the seed's and the short key names into the canonical ones;
- :func:`account_problems` checks an account's fields and returns every problem found, as
  :class:`~mail_pipeline.intake.imap.problems.ImapProblem` data keyed by field;
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
from typing import Any, Protocol
from urllib.parse import urlsplit

from mail_pipeline.intake.imap.problems import ConfigProblemError, ImapProblem, escaped, quoted
from mail_pipeline.intake.limits import DEFAULT_MAX_MESSAGE_BYTES
from mail_pipeline.intake.problems import ConfigProblem

__all__ = [
    "PROVIDERS",
    "AccessTokenSource",
    "ImapAccount",
    "ImapSecurity",
    "PostAction",
    "SaslMechanism",
    "account_fields",
    "account_problems",
    "canonical_imap",
    "endpoint_problem",
    "imap_config_problems",
    "max_message_bytes_of",
    "split_token_command",
    "token_problem",
]

#: The single-field credentials an account may have; exactly one of them, or an OAuth2 client
#: (``oauth2_client_id`` + ``oauth2_token_endpoint``), must be given.
CREDENTIALS = ("password", "oauth2_token", "oauth2_token_command")

#: The OAuth2 client fields of ``imap_config`` (copied to :class:`ImapAccount` as they are,
#: ``oauth2_scopes`` as a tuple).
OAUTH2_CLIENT_FIELDS = (
    "oauth2_client_id",
    "oauth2_client_secret",
    "oauth2_token_endpoint",
    "oauth2_device_endpoint",
    "oauth2_authorize_endpoint",
)

#: The values of ``provider`` (informational: set by the provider presets).
PROVIDERS = ("gmail", "microsoft365", "custom")

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


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


class SaslMechanism(StrEnum):
    """The SASL mechanism an OAuth2 login uses."""

    XOAUTH2 = "xoauth2"  #: Google's and Microsoft's mechanism (the default)
    OAUTHBEARER = "oauthbearer"  #: RFC 7628 (Gmail offers it too)


class AccessTokenSource(Protocol):
    """Where an account with an OAuth2 client gets its access token at login (set by
    :meth:`~mail_pipeline.intake.imap.config.EmailConfigManager.imap_fetch_config`)."""

    def access_token(self) -> tuple[str, bool]:
        """Return ``(access token, came from the cache)``.

        Raises:
            ImapAuthError: not authorized, or the grant was refused (re-authorize).
            ImapConnectError: the token endpoint cannot be used right now (transient).
        """
        ...

    def reject(self, access_token: str) -> None:
        """Forget ``access_token``: the IMAP server refused it although it looked valid."""
        ...


@dataclass(frozen=True)
class ImapAccount:
    """The connection settings of one IMAP mailbox.

    Exactly one kind of credential must be given: ``password``, or OAuth2 as either
    ``oauth2_token`` (an access token), ``oauth2_token_command`` (a command whose standard
    output is an access token; split with :func:`shlex.split`, run without a shell) or an
    OAuth2 client (``oauth2_client_id`` and ``oauth2_token_endpoint``, with
    ``oauth2_client_secret`` when the provider needs one, and ``oauth2_scopes``): its refresh
    token is in the store, and ``token_source`` gives the access token at login.
    ``sasl_mechanism`` is the login mechanism of every OAuth2 kind.

    ``ca_file`` adds a CA bundle to the system's trusted CAs (for servers with a private CA);
    ``verify_tls=False`` turns certificate and host name checks off entirely.

    Raises:
        ConfigProblemError: (a ConfigError) with every problem :func:`account_problems` finds
            (an empty host or username, a port outside 1..65535, an unknown ``security``, no
            credential or more than one kind, an empty or malformed token, an empty
            ``ca_file`` or a timeout that is not a positive number); its message joins them
            by "; ".
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
    oauth2_client_id: str | None = None
    oauth2_client_secret: str | None = field(default=None, repr=False)
    oauth2_token_endpoint: str | None = None
    oauth2_scopes: tuple[str, ...] = ()
    oauth2_device_endpoint: str | None = None
    oauth2_authorize_endpoint: str | None = None
    sasl_mechanism: SaslMechanism = SaslMechanism.XOAUTH2
    provider: str | None = None
    token_source: AccessTokenSource | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = account_problems({f.name: getattr(self, f.name) for f in fields(self)})
        if problems:
            raise ConfigProblemError(problems)
        object.__setattr__(self, "security", ImapSecurity(str(self.security).lower()))
        object.__setattr__(self, "sasl_mechanism", SaslMechanism(str(self.sasl_mechanism).lower()))
        object.__setattr__(self, "oauth2_scopes", tuple(self.oauth2_scopes))

    @property
    def uses_oauth2(self) -> bool:
        """True when the account logs in with OAuth2 (XOAUTH2/OAUTHBEARER), False for a
        password LOGIN."""
        return self.password is None

    @property
    def uses_oauth2_client(self) -> bool:
        """True when the account's access token comes from an OAuth2 client's refresh token."""
        return self.oauth2_client_id is not None

    @property
    def endpoint(self) -> str:
        """``username@host:port (security)``, for messages and logs (no secrets)."""
        return f"{self.username}@{self.host}:{self.port} ({self.security.value})"


def _token_problem(token: object, username: object) -> ConfigProblem | None:
    """Return why ``token`` (the ``oauth2_token`` field) cannot be sent in an XOAUTH2 string,
    or None when it can."""
    who = f"IMAP account {quoted(username)}"
    if not isinstance(token, str) or token == "":
        return ImapProblem("oauth2_token", f"{who}: the OAuth2 token is empty")
    if any(ch.isspace() or ch == "\x01" or not ch.isprintable() for ch in token):
        return ImapProblem(
            "oauth2_token", f"{who}: the OAuth2 token contains whitespace or control characters"
        )
    return None


def token_problem(token: object, username: object) -> str | None:
    """Return why ``token`` cannot be sent in an XOAUTH2 string, or None when it can."""
    problem = _token_problem(token, username)
    return None if problem is None else str(problem)


def split_token_command(command: object) -> list[str]:
    """Split a token command like a POSIX shell would, without running a shell.

    Returns:
        The command's argument vector (never empty).

    Raises:
        ConfigProblemError: (a ConfigError, about ``oauth2_token_command``) the command is
            not a string, is empty or cannot be split (unbalanced quotes).
    """
    if not isinstance(command, str):
        raise ConfigProblemError([ImapProblem("oauth2_token_command", "{field} must be a string")])
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigProblemError(
            [
                ImapProblem(
                    "oauth2_token_command", f"{{field}} cannot be parsed: {escaped(str(exc))}"
                )
            ]
        ) from None
    if not argv:
        raise ConfigProblemError([ImapProblem("oauth2_token_command", "{field} is empty")])
    return argv


def endpoint_problem(name: str, url: object) -> ConfigProblem | None:
    """Return why ``url`` cannot be the OAuth2 endpoint ``name`` (a field key such as
    ``oauth2_token_endpoint``), or None when it can: an https URL with a host, or http only
    for 127.0.0.1, localhost or ::1."""
    if not isinstance(url, str) or not url or url != url.strip():
        return ImapProblem(name, "{field} must be a URL (https://...)")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return ImapProblem(name, f"{{field}} {quoted(url)} is not a valid URL")
    if not host or parts.scheme not in ("https", "http"):
        return ImapProblem(name, f"{{field}} {quoted(url)} must be an https:// URL")
    if parts.scheme == "http" and host not in _LOOPBACK_HOSTS:
        return ImapProblem(
            name, f"{{field}} {quoted(url)} must use https (http only for 127.0.0.1 or localhost)"
        )
    return None


def _client_problems(values: Mapping[str, Any], who: str) -> list[ConfigProblem]:
    """The problems of an account's OAuth2 client fields (none given: []); ``who`` names the
    account, its braces escaped."""
    problems: list[ConfigProblem] = []
    client_id, endpoint = values.get("oauth2_client_id"), values.get("oauth2_token_endpoint")
    secret = values.get("oauth2_client_secret")
    if client_id is None and endpoint is None:
        if secret is not None:
            problems.append(
                ImapProblem("oauth2_client_secret", f"{who}: {{field}} needs {{oauth2_client_id}}")
            )
        return problems
    if client_id is None:
        problems.append(
            ImapProblem("oauth2_token_endpoint", f"{who}: {{field}} needs {{oauth2_client_id}}")
        )
    elif not isinstance(client_id, str) or not client_id.strip() or client_id != client_id.strip():
        problems.append(
            ImapProblem("oauth2_client_id", f"{who}: {{field}} must be a non-empty string")
        )
    if endpoint is None:
        problems.append(
            ImapProblem(
                "oauth2_token_endpoint", f"{who}: {{oauth2_client_id}} needs {{field}} (a URL)"
            )
        )
    elif (problem := endpoint_problem("oauth2_token_endpoint", endpoint)) is not None:
        problems.append(problem)
    if secret is not None and (not isinstance(secret, str) or not secret):
        problems.append(
            ImapProblem(
                "oauth2_client_secret", f"{who}: {{field}} must be a non-empty string when given"
            )
        )
    for name in ("oauth2_device_endpoint", "oauth2_authorize_endpoint"):
        url = values.get(name)
        if url is not None and (problem := endpoint_problem(name, url)) is not None:
            problems.append(problem)
    scopes = values.get("oauth2_scopes", ())
    if not isinstance(scopes, list | tuple) or not all(
        isinstance(scope, str) and scope and not any(ch.isspace() for ch in scope)
        for scope in scopes
    ):
        problems.append(
            ImapProblem(
                "oauth2_scopes", f"{who}: {{field}} must be a list of scopes without spaces"
            )
        )
    return problems


def account_problems(values: Mapping[str, Any]) -> list[ConfigProblem]:
    """Check an account's fields, keyed by :class:`ImapAccount`'s field names.

    A missing credential or ``ca_file`` is None; missing timeouts are not checked (an
    :class:`ImapAccount` always has them).

    Returns:
        Every problem found, in field order, keyed by the stored config's field names
        (``port`` is reported as ``imap_ssl_port``); [] when the fields make a valid account.
    """
    problems: list[ConfigProblem] = []
    host, port, username = values.get("host"), values.get("port"), values.get("username")
    if not isinstance(host, str) or not host.strip():
        problems.append(ImapProblem("imap_host", "{field} must be a non-empty string"))
    elif host != host.strip():
        problems.append(
            ImapProblem("imap_host", f"{{field}} {quoted(host)} has surrounding whitespace")
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        problems.append(
            ImapProblem(
                "imap_ssl_port", f"{{field}} must be a number from 1 to 65535, not {quoted(port)}"
            )
        )
    if not isinstance(username, str) or not username.strip():
        problems.append(ImapProblem("username", "{field} must be a non-empty string"))
    security = values.get("security", ImapSecurity.SSL)
    if str(security).lower() not in {s.value for s in ImapSecurity}:
        allowed = ", ".join(s.value for s in ImapSecurity)
        problems.append(
            ImapProblem("security", f"{{field}} {quoted(security)} is not one of: {allowed}")
        )

    password, token = values.get("password"), values.get("oauth2_token")
    command = values.get("oauth2_token_command")
    client = values.get("oauth2_client_id") is not None or (
        values.get("oauth2_token_endpoint") is not None
    )
    who = f"IMAP account {quoted(username)}"
    oauth2_kinds = [
        (key, name)
        for key, name, given in (
            ("oauth2_token", "{oauth2_token}", token is not None),
            ("oauth2_token_command", "{oauth2_token_command}", command is not None),
            ("oauth2_client_id", "an OAuth2 client", client),
        )
        if given
    ]
    if password is None and not oauth2_kinds:
        problems.append(
            ImapProblem(
                "password",
                f"{who}: a credential is needed: give a {{field}} or an OAuth2 token "
                "({oauth2_token} or {oauth2_token_command}) or an OAuth2 client "
                "({oauth2_client_id} and {oauth2_token_endpoint})",
            )
        )
    elif password is not None and oauth2_kinds:
        problems.append(
            ImapProblem("password", f"{who}: give either a {{field}} or OAuth2, not both")
        )
    if len(oauth2_kinds) > 1:
        kinds = " or ".join(name for _key, name in oauth2_kinds)
        problems.append(
            ImapProblem(oauth2_kinds[0][0], f"{who}: give only one of {kinds}, not both")
        )
    problems.extend(_client_problems(values, who))
    mechanism = values.get("sasl_mechanism", SaslMechanism.XOAUTH2)
    if str(mechanism).lower() not in {m.value for m in SaslMechanism}:
        allowed = ", ".join(m.value for m in SaslMechanism)
        problems.append(
            ImapProblem("sasl_mechanism", f"{{field}} {quoted(mechanism)} is not one of: {allowed}")
        )
    provider = values.get("provider")
    if provider is not None and provider not in PROVIDERS:
        problems.append(
            ImapProblem(
                "provider", f"{{field}} {quoted(provider)} is not one of: {', '.join(PROVIDERS)}"
            )
        )
    if password is not None and (not isinstance(password, str) or password == ""):
        problems.append(ImapProblem("password", f"{who}: the {{field}} is empty"))
    if token is not None and (problem := _token_problem(token, username)) is not None:
        problems.append(problem)
    if command is not None:
        try:
            split_token_command(command)
        except ConfigProblemError as exc:
            problems.extend(exc.problems)
    ca_file = values.get("ca_file")
    if ca_file is not None and (not isinstance(ca_file, str) or not ca_file):
        problems.append(ImapProblem("ca_file", "{field} must be a non-empty path when given"))
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
            problems.append(
                ImapProblem(
                    name, f"{{field}} must be a positive number of seconds, got {quoted(value)}"
                )
            )
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
    for name in (*CREDENTIALS, *OAUTH2_CLIENT_FIELDS):
        values[name] = imap.get(name) or None
    scopes = imap.get("oauth2_scopes")
    values["oauth2_scopes"] = tuple(scopes) if isinstance(scopes, list | tuple) else scopes or ()
    values["sasl_mechanism"] = imap.get("sasl_mechanism") or SaslMechanism.XOAUTH2.value
    values["provider"] = imap.get("provider") or None
    return values


def imap_config_problems(imap: Mapping[str, Any]) -> list[ConfigProblem]:
    """Check a canonical ``imap_config``: the account's fields (:func:`account_problems`), the
    post-action and its ``move_to``, and ``max_message_bytes``.

    Returns:
        Every problem found, keyed by field; [] when the ``imap_config`` is valid.
    """
    problems = account_problems(account_fields(imap))
    try:
        action = PostAction(imap.get("post_action") or "none")
        if action is PostAction.MOVE and not imap.get("move_to"):
            problems.append(ImapProblem("move_to", "{post_action} 'move' needs {field} (a folder)"))
    except ValueError:
        problems.append(
            ImapProblem("post_action", f"{{field}} must be one of {', '.join(PostAction)}")
        )
    limit = imap.get("max_message_bytes")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        problems.append(
            ImapProblem(
                "max_message_bytes",
                f"{{field}} must be a whole number of bytes >= 1, not {quoted(limit)}",
            )
        )
    return problems


def max_message_bytes_of(imap: Mapping[str, Any]) -> int:
    """Return the size limit of a valid ``imap_config`` (default: the spool's limit)."""
    limit = imap.get("max_message_bytes")
    return DEFAULT_MAX_MESSAGE_BYTES if limit is None else int(limit)
