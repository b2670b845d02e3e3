"""The one settings loader: every ``MAIL_PIPELINE_*`` setting, read when asked (never at import).

The CLI (``mail_pipeline.cli.app``) and the Dagster resources (``mail_pipeline.defs.resources``)
both call :func:`load_settings`, so a command and a run started with the same environment see
the same store, files and secret key.

| variable | default | meaning |
| --- | --- | --- |
| ``MAIL_PIPELINE_HOME`` | ``./var`` | where the embedded defaults live |
| ``MAIL_PIPELINE_DATABASE_URL`` | ``sqlite:///$HOME/mail_pipeline.db`` | the store |
| ``MAIL_PIPELINE_ATTACHMENT_ROOT`` | ``$HOME/attachments`` | attachment files |
| ``MAIL_PIPELINE_SPOOL_DIR`` | ``$HOME/spool`` | the Haraka spool |
| ``MAIL_PIPELINE_SECRET_KEY`` | (none) | key that encrypts IMAP passwords at rest |
| ``MAIL_PIPELINE_SECRET_KEY_FILE`` | (none) | a file holding that key |
| ``MAIL_PIPELINE_FETCH_CRON`` | (the schedule's: every 5 min) | the fetch schedule |
| ``MAIL_PIPELINE_CLEANUP_CRON`` | (the schedule's: 03:30 daily) | the retention schedule |
| ``MAIL_PIPELINE_FETCH_PARTITIONS`` | ``on`` | scheduled runs over every mailbox partition |
| ``MAIL_PIPELINE_AUTH_FAILURES_TO_PAUSE`` | ``3`` | auth failures that pause a mailbox |
| ``MAIL_PIPELINE_PARSE_WORKER_MIN_MESSAGES`` | ``300`` | folder syncs that parse in a worker |
| ``MAIL_PIPELINE_EXECUTOR`` | ``in_process`` | fetch engine, or ``multiprocess``, ``celery`` |
| ``MAIL_PIPELINE_MAX_CONCURRENT`` | (CPU count) | step processes at once, ``multiprocess`` only |
| ``MAIL_PIPELINE_CELERY_BROKER`` | ``redis://localhost:6379/0`` | Celery broker, ``celery`` only |
| ``MAIL_PIPELINE_CELERY_BACKEND`` | ``redis://localhost:6379/1`` | Celery results (``celery``) |
| ``MAIL_PIPELINE_METRICS_WINDOW_HOURS`` | ``24`` | the window of "FAILED tasks" and "duplicates" |
| ``MAIL_PIPELINE_HEALTH_FAILED_TASKS`` | ``1`` | FAILED tasks in the window that make a warning |
| ``MAIL_PIPELINE_HEALTH_STALE_TASKS`` | ``1`` | stale open tasks that make a warning |
| ``MAIL_PIPELINE_HEALTH_MISSED_FETCHES`` | ``3`` | fetch intervals without a success: critical |
| ``MAIL_PIPELINE_HEALTH_SPOOL_WARNING_SECONDS`` | ``1800`` | spool backlog age: warning |
| ``MAIL_PIPELINE_HEALTH_SPOOL_CRITICAL_SECONDS`` | ``7200`` | spool backlog age: critical |
| ``MAIL_PIPELINE_HEALTH_SPOOL_FAILED`` | ``0`` (off) | messages in spool ``failed/``: warning |

(``$HOME`` is ``MAIL_PIPELINE_HOME``; relative paths are taken from the current directory.
``MAIL_PIPELINE_AUTH_FAILURES_TO_PAUSE`` counts consecutive IMAP authentication failures; ``0``
never pauses. ``MAIL_PIPELINE_PARSE_WORKER_MIN_MESSAGES``: a folder sync with at least this many
new messages (in more than one batch) parses them in a worker process; ``0`` never does.
``MAIL_PIPELINE_METRICS_WINDOW_HOURS`` (whole hours, 1 or more) is the window of
the metrics' and the health check's "FAILED tasks" and of the metrics' "duplicates". The
``HEALTH_*`` thresholds are whole numbers, ``0`` turns a check off; see
:mod:`mail_pipeline.maintenance.health_thresholds`.)

**Where the secret key comes from** — the first of these that is set wins:

1. ``MAIL_PIPELINE_SECRET_KEY``: the key itself;
2. ``MAIL_PIPELINE_SECRET_KEY_FILE``: a file holding the key (it must be readable and not
   empty: there is no falling back to 3 when it is not);
3. the home's key file ``$MAIL_PIPELINE_HOME/secret.key``, when it exists (``scripts/demo.sh``
   and ``mail-pipeline secret-key`` create it).

With none of them there is no key: whatever has to seal or open an IMAP password fails with an
error that says how to make one (``mail-pipeline secret-key``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from mail_pipeline.errors import ConfigError, SecretKeyError

ENV_PREFIX = "MAIL_PIPELINE_"
#: Consecutive IMAP authentication failures after which a mailbox is paused, by default.
DEFAULT_AUTH_FAILURES_TO_PAUSE = 3
#: New messages from which a folder sync parses in a worker process, by default (why this
#: number: mail_pipeline.intake.imap.parse_stage).
DEFAULT_PARSE_WORKER_MIN_MESSAGES = 300
#: The hours of the metrics' and the health check's window ("FAILED tasks in the last 24 h"),
#: by default.
DEFAULT_METRICS_WINDOW_HOURS = 24
#: The health thresholds (``HEALTH_<NAME>`` after the prefix) and their defaults; 0 turns one off.
HEALTH_DEFAULTS = {
    "FAILED_TASKS": 1,
    "STALE_TASKS": 1,
    "MISSED_FETCHES": 3,
    "SPOOL_WARNING_SECONDS": 1800,
    "SPOOL_CRITICAL_SECONDS": 7200,
    "SPOOL_FAILED": 0,
}
#: The name of the home's key file (precedence step 3).
HOME_KEY_FILE = "secret.key"


class _Environment(BaseSettings):
    """The raw ``MAIL_PIPELINE_*`` variables (empty counts as unset); see the module table."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore")

    home: Path = Path("var")
    database_url: str | None = None
    attachment_root: Path | None = None
    spool_dir: Path | None = None
    secret_key: SecretStr | None = None
    secret_key_file: Path | None = None
    fetch_cron: str | None = None
    cleanup_cron: str | None = None
    fetch_partitions: str | None = None
    auth_failures_to_pause: str | None = None
    parse_worker_min_messages: str | None = None
    executor: str | None = None
    max_concurrent: str | None = None
    celery_broker: str | None = None
    celery_backend: str | None = None
    metrics_window_hours: str | None = None
    health_failed_tasks: str | None = None
    health_stale_tasks: str | None = None
    health_missed_fetches: str | None = None
    health_spool_warning_seconds: str | None = None
    health_spool_critical_seconds: str | None = None
    health_spool_failed: str | None = None


@dataclass(frozen=True)
class Settings:
    """Where the store, attachments and spool live, the crons (None: the schedule's default),
    and where the secret key comes from.

    The key itself is read by :attr:`secret_key` when it is needed, so a command that never
    touches a password works without access to the key file.
    """

    home: Path
    database_url: str
    attachment_root: Path
    spool_dir: Path
    fetch_cron: str | None = None
    cleanup_cron: str | None = None
    #: the raw ``MAIL_PIPELINE_FETCH_PARTITIONS`` (see :attr:`fetch_over_partitions`)
    fetch_partitions_env: str | None = None
    secret_key_env: str | None = field(default=None, repr=False)
    secret_key_file: Path | None = None
    auth_failures_to_pause_env: str | None = None
    #: the raw ``MAIL_PIPELINE_PARSE_WORKER_MIN_MESSAGES`` (see :attr:`parse_worker_min_messages`)
    parse_worker_min_messages_env: str | None = None
    executor: str | None = None
    max_concurrent_env: str | None = None
    celery_broker: str | None = None
    celery_backend: str | None = None
    #: the raw ``MAIL_PIPELINE_METRICS_WINDOW_HOURS`` (see :attr:`metrics_window_hours`)
    metrics_window_env: str | None = None
    #: the raw values of the ``HEALTH_`` variables by name (``FAILED_TASKS``, ...), read by
    #: :meth:`health_threshold`
    health_env: dict[str, str | None] = field(default_factory=dict)

    def health_threshold(self, name: str) -> int | None:
        """One health threshold, the variable ``HEALTH_<name>`` (prefixed), read when it is needed.

        Returns:
            The threshold (its :data:`HEALTH_DEFAULTS` value when unset), or None when it is
            ``0``: the check is off.

        Raises:
            KeyError: ``name`` is not one of :data:`HEALTH_DEFAULTS`.
            ConfigError: the value is not a whole number >= 0.
        """
        default = HEALTH_DEFAULTS[name]
        value = whole_number(f"HEALTH_{name}", self.health_env.get(name), 0, "0 (off) or more")
        return (default if value is None else value) or None

    @property
    def fetch_over_partitions(self) -> bool:
        """Whether a scheduled fetch runs over every mailbox partition
        (``MAIL_PIPELINE_FETCH_PARTITIONS``: ``on``, the default, or ``off``).

        On, Dagster records each mailbox's attempt, so the failed mailboxes are the failed
        partitions of ``fetched_mail``; the price is one event per mailbox per tick, written
        when the run is created (measured: about 18 ms each on the embedded SQLite instance).
        Off, the scheduled runs have no partition: cheaper, and failures are still in the run,
        the task, the check and the CLI, but not offered as failed partitions.

        Raises:
            ConfigError: the value is neither on nor off.
        """
        raw = (self.fetch_partitions_env or "").strip().lower()
        if raw in ("", "on", "true", "yes", "1"):
            return True
        if raw in ("off", "false", "no", "0"):
            return False
        raise ConfigError(
            f"MAIL_PIPELINE_FETCH_PARTITIONS must be on or off, not {self.fetch_partitions_env!r}"
        )

    @property
    def auth_failures_to_pause(self) -> int | None:
        """The circuit breaker's threshold: ``MAIL_PIPELINE_AUTH_FAILURES_TO_PAUSE``, read
        when it is needed (like the key), so a bad value fails only what pauses mailboxes.

        Returns:
            The number of consecutive authentication failures that pause a mailbox (3 when
            unset), or None for ``0``: never pause.

        Raises:
            ConfigError: the value is not a whole number >= 0.
        """
        value = whole_number(
            "AUTH_FAILURES_TO_PAUSE", self.auth_failures_to_pause_env, 0, "0 (never pause) or more"
        )
        if value is None:
            return DEFAULT_AUTH_FAILURES_TO_PAUSE
        return value or None

    @property
    def parse_worker_min_messages(self) -> int | None:
        """When a folder sync parses in a worker process:
        ``MAIL_PIPELINE_PARSE_WORKER_MIN_MESSAGES``, read when it is needed.

        Returns:
            The new messages of a folder from which its sync uses the worker
            (:data:`DEFAULT_PARSE_WORKER_MIN_MESSAGES` when unset), or None for ``0``: never.

        Raises:
            ConfigError: the value is not a whole number >= 0.
        """
        value = whole_number(
            "PARSE_WORKER_MIN_MESSAGES",
            self.parse_worker_min_messages_env,
            0,
            "0 (never a worker) or more",
        )
        if value is None:
            return DEFAULT_PARSE_WORKER_MIN_MESSAGES
        return value or None

    @property
    def metrics_window_hours(self) -> int:
        """The hours of the metrics' window: ``MAIL_PIPELINE_METRICS_WINDOW_HOURS``, read
        when it is needed. The metrics' "FAILED tasks" and "duplicates" series and the health
        check's "FAILED tasks" count the tasks that finished within it.

        Returns:
            The hours (:data:`DEFAULT_METRICS_WINDOW_HOURS` when unset).

        Raises:
            ConfigError: the value is not a whole number >= 1.
        """
        value = whole_number("METRICS_WINDOW_HOURS", self.metrics_window_env, 1, "1 or more")
        return DEFAULT_METRICS_WINDOW_HOURS if value is None else value

    @property
    def home_key_file(self) -> Path:
        """The home's key file, ``$MAIL_PIPELINE_HOME/secret.key`` (precedence step 3)."""
        return self.home / HOME_KEY_FILE

    @property
    def key_file(self) -> Path:
        """The file the key is read from when ``MAIL_PIPELINE_SECRET_KEY`` is not set: the
        ``MAIL_PIPELINE_SECRET_KEY_FILE`` if set, else the home's key file."""
        return self.secret_key_file or self.home_key_file

    def secret_key_source(self) -> str | None:
        """Return where the key comes from, in words (for messages), or None when nowhere."""
        if self.secret_key_env:
            return f"{ENV_PREFIX}SECRET_KEY"
        if self.secret_key_file is not None:
            return f"{ENV_PREFIX}SECRET_KEY_FILE ({self.secret_key_file})"
        if self.home_key_file.exists():
            return f"the home's key file {self.home_key_file}"
        return None

    @property
    def secret_key(self) -> str | None:
        """The key that seals IMAP passwords, by the precedence of the module docstring.

        Returns:
            The key (stripped), or None when none of the three places has one.

        Raises:
            SecretKeyError: the key file to use exists (or is named) but cannot be read or is
                empty.
        """
        if self.secret_key_env:
            return self.secret_key_env
        if self.secret_key_file is not None:
            return _read_key_file(self.secret_key_file, f"{ENV_PREFIX}SECRET_KEY_FILE ")
        if self.home_key_file.exists():
            return _read_key_file(self.home_key_file, "the home's key file ")
        return None


def whole_number(variable: str, text: str | None, minimum: int, allowed: str) -> int | None:
    """Parse the value of ``MAIL_PIPELINE_<variable>`` as a whole number >= ``minimum``.

    Returns:
        The number, or None when the value is unset or blank.

    Raises:
        ConfigError: the value is not a whole number, or below ``minimum`` (the message says
            what is ``allowed``).
    """
    name = f"{ENV_PREFIX}{variable}"
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name} must be {allowed}, got {value}")
    return value


def load_settings() -> Settings:
    """Read the settings from the environment now, with the defaults of the module table.

    Returns:
        The settings; paths are absolute (relative ones are taken from the current directory).
    """
    env = _Environment()
    home = _absolute(env.home)
    key = env.secret_key.get_secret_value().strip() if env.secret_key else ""
    return Settings(
        home=home,
        database_url=env.database_url or f"sqlite:///{home / 'mail_pipeline.db'}",
        attachment_root=_absolute(env.attachment_root or home / "attachments"),
        spool_dir=_absolute(env.spool_dir or home / "spool"),
        fetch_cron=(env.fetch_cron or "").strip() or None,
        cleanup_cron=(env.cleanup_cron or "").strip() or None,
        fetch_partitions_env=env.fetch_partitions,
        secret_key_env=key or None,
        secret_key_file=_absolute(env.secret_key_file) if env.secret_key_file else None,
        auth_failures_to_pause_env=env.auth_failures_to_pause,
        parse_worker_min_messages_env=env.parse_worker_min_messages,
        executor=(env.executor or "").strip().lower() or None,
        max_concurrent_env=env.max_concurrent,
        celery_broker=(env.celery_broker or "").strip() or None,
        celery_backend=(env.celery_backend or "").strip() or None,
        metrics_window_env=env.metrics_window_hours,
        health_env={name: getattr(env, f"health_{name.lower()}") for name in HEALTH_DEFAULTS},
    )


def _absolute(path: Path) -> Path:
    return path.expanduser().absolute()


def _read_key_file(path: Path, what: str) -> str:
    try:
        key = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretKeyError(f"cannot read {what}{path}: {exc}") from None
    if not key:
        raise SecretKeyError(
            f"{what}{path} is empty: put the key in it, or remove it and run "
            f"`mail-pipeline secret-key` to make a new one"
        )
    return key
