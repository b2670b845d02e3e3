"""Configuring a Haraka server: its settings, where Haraka is, and the runtime directory.

:class:`HarakaConfig` says how to run one server. :func:`prepare_runtime` builds the directory
Haraka is started with — a copy of the repository's ``haraka/config`` and ``haraka/plugins``
plus generated ``smtp.ini`` (listen address, one process), ``host_list`` (the domains) and
``mail_pipeline_spool.ini`` (spool directory, size limit, fsync) — and :func:`prepare_spool`
the spool folders the plugin writes into. Starting and stopping the server is
:mod:`mail_pipeline.intake.spool.haraka`. A config's problems are :class:`HarakaProblem`
data keyed by field (:mod:`mail_pipeline.intake.problems`), so the command line can name its
options. Stdlib only; no Dagster imports.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from mail_pipeline.errors import ConfigError, SpoolError
from mail_pipeline.intake.limits import DEFAULT_MAX_MESSAGE_BYTES
from mail_pipeline.intake.problems import ConfigProblem, ConfigProblemError, quoted

SPOOL_SUBDIRS = ("inbox", "processed", "failed", "unmatched", "tmp")
HARAKA_DIR_ENV = "MAIL_PIPELINE_HARAKA_DIR"
NODE_ENV = "MAIL_PIPELINE_NODE"
BOOTSTRAP_HINT = "run scripts/bootstrap.sh (npm ci --prefix haraka)"
GENERATED_CONFIG = ("smtp.ini", "host_list", "mail_pipeline_spool.ini")


#: The fields of :class:`HarakaConfig` a problem can be about, with the labels ``str()`` of
#: a problem shows (the command line names its options instead).
FIELD_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "domains": "HarakaConfig.domains",
        "host": "HarakaConfig.host",
        "port": "HarakaConfig.port",
        "max_message_bytes": "HarakaConfig.max_message_bytes",
    }
)


class HarakaProblem(ConfigProblem):
    """A problem of a :class:`HarakaConfig`, about one of :data:`FIELD_LABELS`."""

    LABELS = FIELD_LABELS


def _domain_problems(given: tuple[str, ...]) -> list[HarakaProblem]:
    names = [(d, d.strip().lower().rstrip(".")) for d in given if d.strip()]
    if not names:
        return [HarakaProblem("domains", "{field}: at least one domain is required")]
    return [
        HarakaProblem("domains", f"{{field}}: {quoted(raw.strip())} is not a domain name")
        for raw, name in names
        if not name or "@" in name or any(c.isspace() for c in name)
    ]


@dataclass(frozen=True)
class HarakaConfig:
    """How to run one Haraka server.

    ``runtime_dir`` holds the generated config, the pid file and the log; it defaults to
    ``<spool_dir>/../haraka-runtime`` when not given.

    Raises:
        ConfigProblemError: a field is invalid; its problems are :class:`HarakaProblem`.
    """

    spool_dir: Path
    domains: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 2525
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    runtime_dir: Path | None = None
    fsync: bool = True
    start_timeout: float = 30.0
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spool_dir", Path(self.spool_dir).resolve())
        if self.runtime_dir is not None:
            object.__setattr__(self, "runtime_dir", Path(self.runtime_dir).resolve())
        problems = _domain_problems(tuple(self.domains))
        if not self.host or any(c.isspace() for c in self.host):
            problems.append(
                HarakaProblem("host", f"{{field}}: {quoted(self.host)} is not a host or address")
            )
        if not 0 < self.port < 65536:
            problems.append(HarakaProblem("port", f"{{field}}: {self.port} is not a TCP port"))
        if self.max_message_bytes <= 0:
            problems.append(HarakaProblem("max_message_bytes", "{field} must be positive"))
        if problems:
            raise ConfigProblemError(problems)
        domains = tuple(d.strip().lower().rstrip(".") for d in self.domains if d.strip())
        object.__setattr__(self, "domains", domains)

    @property
    def resolved_runtime_dir(self) -> Path:
        """Return the runtime directory, defaulting to ``haraka-runtime`` beside the spool."""
        return self.runtime_dir or self.spool_dir.parent / "haraka-runtime"


# --- locating Haraka ------------------------------------------------------------------------


def find_haraka_dir() -> Path:
    """Return the repository's ``haraka/`` directory.

    ``MAIL_PIPELINE_HARAKA_DIR`` overrides the default, which is ``haraka/`` beside the
    ``mail_pipeline`` package (the package is used from an editable install).

    Raises:
        ConfigError: the directory does not exist or has no ``config/plugins``.
    """
    override = os.environ.get(HARAKA_DIR_ENV)
    haraka_dir = Path(override) if override else Path(__file__).resolve().parents[3] / "haraka"
    if not (haraka_dir / "config" / "plugins").is_file():
        where = f"{HARAKA_DIR_ENV}={override}" if override else str(haraka_dir)
        raise ConfigError(f"no Haraka directory with config/plugins at {where}")
    return haraka_dir.resolve()


def haraka_entry(haraka_dir: Path | None = None) -> tuple[str, Path]:
    """Return ``(node executable, Haraka's bin/haraka script)``.

    Raises:
        ConfigError: node is not installed, or ``npm ci --prefix haraka`` has not been run.
    """
    haraka_dir = haraka_dir or find_haraka_dir()
    node = os.environ.get(NODE_ENV) or shutil.which("node")
    if not node or not os.access(node, os.X_OK):
        raise ConfigError(
            f"node (Node.js 20+) was not found on PATH; install it, then {BOOTSTRAP_HINT}"
        )
    script = haraka_dir / "node_modules" / "Haraka" / "bin" / "haraka"
    if not script.is_file():
        raise ConfigError(
            f"Haraka is not installed in {haraka_dir / 'node_modules'}: {BOOTSTRAP_HINT}"
        )
    return node, script


# --- runtime directory ----------------------------------------------------------------------


def prepare_spool(spool_dir: Path) -> None:
    """Create the spool root and its sub-directories and check that they are writable.

    Raises:
        SpoolError: a directory cannot be created or written.
    """
    for sub in SPOOL_SUBDIRS:
        path = spool_dir / sub
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"cannot create spool directory {path}: {exc}") from exc
        if not os.access(path, os.W_OK | os.X_OK):
            raise SpoolError(f"spool directory {path} is not writable")


def prepare_runtime(config: HarakaConfig, haraka_dir: Path | None = None) -> Path:
    """Build the runtime directory Haraka is started with; return its path.

    Copies ``haraka/config`` and ``haraka/plugins`` afresh and writes the generated files
    (listen address, domains, spool settings) over the copies.

    Raises:
        ConfigError: the Haraka directory is missing.
        SpoolError: the runtime directory cannot be written.
    """
    haraka_dir = haraka_dir or find_haraka_dir()
    runtime = config.resolved_runtime_dir
    try:
        runtime.mkdir(parents=True, exist_ok=True)
        for sub in ("config", "plugins"):
            shutil.rmtree(runtime / sub, ignore_errors=True)
            shutil.copytree(haraka_dir / sub, runtime / sub)
        generated = {
            "smtp.ini": _smtp_ini(config),
            "host_list": "".join(f"{d}\n" for d in config.domains),
            "mail_pipeline_spool.ini": _spool_ini(config),
        }
        for name, text in generated.items():
            (runtime / "config" / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SpoolError(f"cannot build the Haraka runtime directory {runtime}: {exc}") from exc
    return runtime


def _listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _smtp_ini(config: HarakaConfig) -> str:
    return (
        "; generated by mail_pipeline.intake.spool.haraka_config\n"
        f"listen={_listen_address(config.host, config.port)}\n"
        "; set so that no plugin asks a STUN server for it\n"
        "public_ip=127.0.0.1\n"
        "; one process: the launcher's pid is the server\n"
        "nodes=0\n"
        "daemonize=false\n"
        "inactivity_timeout=300\n"
        "force_shutdown_timeout=10\n"
    )


def _spool_ini(config: HarakaConfig) -> str:
    return (
        "; generated by mail_pipeline.intake.spool.haraka_config\n"
        "[main]\n"
        f"spool_dir={config.spool_dir}\n"
        f"max_bytes={config.max_message_bytes}\n"
        f"fsync={'true' if config.fsync else 'false'}\n"
    )
