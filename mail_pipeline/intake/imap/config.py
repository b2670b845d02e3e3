"""EmailConfigManager: a user's ``email_config`` setting, read, validated and updated.

The stored shape follows the seed system (``settings`` row, key ``email_config``)::

    {
      "mode": "custom_imap",              # or "auto_assign": mail arrives via the Haraka spool
      "imap_config": {
        "imap_host": "imap.example.org",  # seed names; "host"/"port" are accepted too
        "imap_ssl_port": 993,
        "username": "alice@example.org",
        "password": "fernet:v1:...",      # encrypted at rest, never logged, masked when shown
        "use_ssl": true,                  # or "security": "ssl" | "starttls" | "plain"
        "verify_tls": true, "ca_file": null,
        "oauth2_token": null, "oauth2_token_command": null,
        "oauth2_client_id": null,         # or an OAuth2 client: its refresh token is in the
        "oauth2_client_secret": null,     #   store (oauth2_grants); the secret is sealed too
        "oauth2_token_endpoint": null, "oauth2_scopes": [],
        "oauth2_device_endpoint": null, "oauth2_authorize_endpoint": null,
        "sasl_mechanism": "xoauth2",      # or "oauthbearer"
        "provider": null,                 # "gmail" | "microsoft365" | "custom" (informational)
        "post_action": "none",            # "mark_seen" | "move" | "delete"
        "move_to": null, "delete_after_fetch": false,
        "max_message_bytes": 26214400     # optional; larger messages stay on the server
      },
      "filter_config": {
        "folders": ["INBOX"],             # or the seed's single "folder"
        "max_age_days": 7, "since": null, # limit the FIRST sync of a mailbox
        "filters": ["unread", "from:boss@example.org", "subject:invoice"],
        "last_email_fetch_time": "2026-11-25T10:00:00+00:00"
      }
    }

The ``imap_config`` block is checked and turned into an
:class:`~mail_pipeline.intake.imap.account.ImapAccount` by the account schema
(:mod:`mail_pipeline.intake.imap.account`), the one definition of its fields that both
``mail-pipeline imap set`` (through :meth:`EmailConfigManager.update_fetch_config`) and the loader
(:meth:`EmailConfigManager.imap_fetch_config`) go through; the ``filter_config`` block is checked
here. An account with an OAuth2 client gets a
:class:`~mail_pipeline.oauth2.tokens.StoredTokenSource` as its ``token_source``: its login asks
it for the access token (cached or refreshed from the grant in the store).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from mail_pipeline.errors import ConfigError
from mail_pipeline.intake.imap.account import (
    ImapAccount,
    PostAction,
    account_fields,
    canonical_imap,
    imap_config_problems,
    max_message_bytes_of,
)
from mail_pipeline.intake.imap.problems import ConfigProblemError, ImapProblem, quoted
from mail_pipeline.intake.limits import DEFAULT_MAX_MESSAGE_BYTES
from mail_pipeline.intake.problems import ConfigProblem
from mail_pipeline.oauth2.tokens import ClientSettings, RefreshPolicy, StoredTokenSource
from mail_pipeline.platform.secret_box import SecretBox, is_encrypted, mask
from mail_pipeline.storage.store import EmailSource, MailStore


@dataclass(frozen=True)
class ImapTarget:
    """An active user with an IMAP config: who, which server, and the config's problems
    (none: it is valid)."""

    user_id: int
    username: str
    host: str
    problems: tuple[ConfigProblem, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the config has no problem."""
        return not self.problems

    @property
    def problem(self) -> str:
        """The problems with the stored fields' labels, joined by "; " ("" when valid)."""
        return "; ".join(str(problem) for problem in self.problems)


log = logging.getLogger(__name__)

SETTING_KEY = "email_config"
SECRET_FIELDS = ("password", "oauth2_token", "oauth2_client_secret")
DEFAULT_MAX_AGE_DAYS = 7


@dataclass(frozen=True)
class FetchFilters:
    """Which messages the first sync of a mailbox takes, and which folders are synced.

    ``max_age_days``/``since`` bound only the first sync (and a sync after a UIDVALIDITY
    change); later syncs take every UID above the cursor, so nothing is skipped.
    """

    folders: tuple[str, ...] = ("INBOX",)
    max_age_days: int | None = DEFAULT_MAX_AGE_DAYS
    since: date | None = None
    unread_only: bool = False
    from_contains: tuple[str, ...] = ()
    subject_contains: tuple[str, ...] = ()

    def first_sync_since(self, today: date) -> date | None:
        """Return the IMAP SEARCH SINCE date of a first sync, or None for no limit."""
        bounds = [b for b in (self.since,) if b is not None]
        if self.max_age_days is not None:
            bounds.append(today - timedelta(days=self.max_age_days))
        return max(bounds) if bounds else None


@dataclass(frozen=True)
class ImapFetchConfig:
    """Everything the mailbox fetcher needs for one user (credentials decrypted).

    ``max_message_bytes``: a message whose ``RFC822.SIZE`` is larger is not fetched; it stays
    on the server and its UID is recorded as ``too_large``.
    """

    account: ImapAccount
    filters: FetchFilters
    post_action: PostAction = PostAction.NONE
    move_to: str | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


def source_of(config: dict[str, Any]) -> EmailSource | None:
    """Return where a stored ``email_config`` says mail comes from: IMAP, HARAKA
    (``auto_assign`` or a ``file_config``), or None."""
    if config.get("mode") == "auto_assign" or "file_config" in config:
        return EmailSource.HARAKA
    if "imap_config" in config:
        return EmailSource.IMAP
    return None


def _problems(config: dict[str, Any]) -> list[ConfigProblem]:
    """Return every problem of an ``email_config`` with an ``imap_config`` ([] when valid):
    the account's (:func:`~mail_pipeline.intake.imap.account.imap_config_problems`), then the
    ``filter_config``'s."""
    imap = config.get("imap_config")
    if not isinstance(imap, dict):
        return [ImapProblem("imap_config", "{field} is missing")]
    problems = imap_config_problems(canonical_imap(imap))
    filters = config.get("filter_config") or {}
    if not isinstance(filters, dict):
        problems.append(ImapProblem("filter_config", "{field} must be an object"))
        return problems
    age = filters.get("max_age_days", DEFAULT_MAX_AGE_DAYS)
    if age is not None and (isinstance(age, bool) or not isinstance(age, int) or age < 0):
        problems.append(
            ImapProblem(
                "max_age_days", f"{{field}} must be a whole number of days >= 0, not {quoted(age)}"
            )
        )
    if filters.get("since") is not None:
        try:
            date.fromisoformat(str(filters["since"]))
        except ValueError:
            problems.append(
                ImapProblem(
                    "since", f"{{field}} must be a date YYYY-MM-DD, not {quoted(filters['since'])}"
                )
            )
    for item in filters.get("filters") or []:
        if not isinstance(item, str) or not (
            item == "unread" or item.startswith(("from:", "subject:"))
        ):
            problems.append(
                ImapProblem(
                    "filters",
                    f"unknown {{field}} {quoted(item)} (use unread, from:TEXT, subject:TEXT)",
                )
            )
    folders = filters.get("folders", [filters.get("folder", "INBOX")])
    if (
        not isinstance(folders, list)
        or not folders
        or not all(isinstance(f, str) and f for f in folders)
    ):
        problems.append(ImapProblem("folders", "{field} must be a non-empty list of folder names"))
    return problems


class EmailConfigManager:
    """Reads, validates and updates users' ``email_config`` settings (the seed's methods)."""

    def __init__(
        self,
        store: MailStore,
        secret_key: str | None,
        *,
        oauth2_policy: RefreshPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``secret_key`` may be None until a password has to be sealed or opened.
        ``oauth2_policy`` is how OAuth2 access tokens are cached and refreshed, ``clock`` the
        time their expiry is compared with (default: now, UTC)."""
        self.store = store
        self._secret_key = secret_key
        self._box: SecretBox | None = None
        self.oauth2_policy = oauth2_policy or RefreshPolicy()
        self._clock = clock or (lambda: datetime.now(UTC))

    @property
    def box(self) -> SecretBox:
        """The cipher for secrets, made once (deriving its key costs CPU on every mailbox).

        Raises:
            SecretKeyError: no key is configured.
        """
        if self._box is None:
            self._box = SecretBox(self._secret_key)
        return self._box

    # --- the seed's API ------------------------------------------------------------------

    def get_email_config(self, user: int | str) -> dict[str, Any]:
        """Return the stored ``email_config`` of ``user`` (secrets still sealed), or {}.

        Raises:
            NotFoundError: no such user.
        """
        return self.store.users.get_setting(user, SETTING_KEY) or {}

    def detect_email_source(self, user: int | str) -> EmailSource | None:
        """Return where ``user``'s mail comes from: IMAP, HARAKA (``auto_assign``), or None.

        Raises:
            NotFoundError: no such user.
        """
        return source_of(self.get_email_config(user))

    @staticmethod
    def validate_imap_config(config: dict[str, Any]) -> None:
        """Check an ``email_config`` with an ``imap_config``.

        Raises:
            ConfigProblemError: (a ConfigError) with every problem found; its message is
                "invalid IMAP config: " and the problems joined by "; ".
        """
        problems = _problems(config)
        if problems:
            raise ConfigProblemError(problems, "invalid IMAP config: ")

    @staticmethod
    def is_valid_imap_config(config: dict[str, Any]) -> bool:
        """True when :meth:`validate_imap_config` accepts ``config``."""
        return not _problems(config)

    def update_fetch_config(self, user: int | str, config: dict[str, Any]) -> dict[str, Any]:
        """Validate and store ``config`` for ``user``, sealing its secrets; return the masked form.

        Secrets given as ``********`` (the mask) keep their stored value, so a config shown by
        :meth:`masked_config` can be edited and saved back.

        Raises:
            ConfigError: invalid config (nothing stored); SecretKeyError: no key to seal with.
            NotFoundError: no such user.
        """
        new = copy.deepcopy(config)
        imap = new.get("imap_config")
        if isinstance(imap, dict):
            old_imap = self.get_email_config(user).get("imap_config") or {}
            for name in SECRET_FIELDS:
                if imap.get(name) == mask("x"):
                    imap[name] = old_imap.get(name)
        self.validate_imap_config(new)
        imap = canonical_imap(new["imap_config"])
        for name in SECRET_FIELDS:
            if imap.get(name):
                imap[name] = self.box.seal(str(imap[name]))
        new["imap_config"] = imap
        new.setdefault("mode", "custom_imap")
        filters = dict(new.get("filter_config") or {})
        if "folder" in filters and "folders" not in filters:
            filters["folders"] = [filters.pop("folder")]
        new["filter_config"] = filters
        self.store.users.set_setting(user, SETTING_KEY, new)
        log.info("email config updated for user %s", user)
        return self.masked_config(new)

    def update_fetch_time(self, user: int | str, when: datetime) -> None:
        """Record ``when`` as ``filter_config.last_email_fetch_time`` of ``user``.

        Raises:
            NotFoundError: no such user.
        """
        config = self.get_email_config(user)
        if not config:
            return
        filters = dict(config.get("filter_config") or {})
        filters["last_email_fetch_time"] = when.astimezone(UTC).isoformat()
        config["filter_config"] = filters
        self.store.users.set_setting(user, SETTING_KEY, config)

    # --- for the fetcher and the CLI -----------------------------------------------------

    @staticmethod
    def masked_config(config: dict[str, Any]) -> dict[str, Any]:
        """Return a copy of ``config`` with every secret replaced by the mask."""
        shown = copy.deepcopy(config)
        imap = shown.get("imap_config")
        if isinstance(imap, dict):
            for name in SECRET_FIELDS:
                if name in imap:
                    imap[name] = mask(imap[name])
        return shown

    def imap_fetch_config(
        self,
        user: int | str,
        *,
        connect_timeout: float = 15.0,
        read_timeout: float = 60.0,
    ) -> ImapFetchConfig:
        """Return the decrypted fetch settings of ``user``.

        An account with an OAuth2 client gets a token source over the user's grant; a missing
        grant is reported at login (:class:`~mail_pipeline.errors.OAuth2NotAuthorizedError`),
        not here.

        Raises:
            ConfigError: no or invalid IMAP config; SecretKeyError: secrets cannot be opened.
            NotFoundError: no such user.
        """
        config = self.get_email_config(user)
        if source_of(config) is not EmailSource.IMAP:
            raise ConfigError(f"user {user} has no IMAP config")
        self.validate_imap_config(config)
        imap = canonical_imap(config["imap_config"])
        values = account_fields(imap)
        for name in SECRET_FIELDS:
            value = values[name]
            if value is not None:
                values[name] = self.box.open(value) if is_encrypted(value) else str(value)
        if values["oauth2_client_id"] is not None:
            record = self.store.users.get(user)
            values["token_source"] = StoredTokenSource(
                self.store,
                self.box,
                record.id,
                record.username,
                ClientSettings(
                    values["oauth2_client_id"],
                    values["oauth2_token_endpoint"],
                    values["oauth2_client_secret"],
                    tuple(values["oauth2_scopes"]),
                ),
                policy=self.oauth2_policy,
                clock=self._clock,
            )
        account = ImapAccount(**values, connect_timeout=connect_timeout, read_timeout=read_timeout)
        filters = config.get("filter_config") or {}
        items = filters.get("filters") or []
        since = filters.get("since")
        return ImapFetchConfig(
            account=account,
            filters=FetchFilters(
                folders=tuple(filters.get("folders") or [filters.get("folder") or "INBOX"]),
                max_age_days=filters.get("max_age_days", DEFAULT_MAX_AGE_DAYS),
                since=date.fromisoformat(str(since)) if since else None,
                unread_only="unread" in items,
                from_contains=tuple(i[5:] for i in items if i.startswith("from:")),
                subject_contains=tuple(i[8:] for i in items if i.startswith("subject:")),
            ),
            post_action=PostAction(imap.get("post_action") or "none"),
            move_to=imap.get("move_to"),
            max_message_bytes=max_message_bytes_of(imap),
        )

    def imap_users(self) -> list[tuple[int, str, bool, str]]:
        """Return (user id, user name, valid?, problem) for every active user with IMAP config."""
        return [(t.user_id, t.username, t.ok, t.problem) for t in self.imap_targets()]

    def imap_targets(self) -> list[ImapTarget]:
        """Return every active user with an IMAP config, with the server it is fetched from
        (lower-cased host name, "" when the config has none) and the config's problems, keyed
        by field (none: valid). Nothing is decrypted."""
        out = []
        for user, config in self.store.users.users_with_setting(SETTING_KEY):
            if config.get("mode") == "auto_assign" or "imap_config" not in config:
                continue
            imap = config["imap_config"]
            host = canonical_imap(imap).get("imap_host") if isinstance(imap, dict) else None
            out.append(
                ImapTarget(
                    user.id,
                    user.username,
                    host.strip().lower() if isinstance(host, str) else "",
                    tuple(_problems(config)),
                )
            )
        return out
