"""Start, stop and inspect the Haraka SMTP server shipped in the repository's ``haraka/``.

Haraka accepts mail for the service's domains and writes each message into a spool directory
(see ``haraka/plugins/mail_pipeline_spool.js`` for the exact protocol). :func:`start` builds
the runtime directory of one server (see :mod:`mail_pipeline.intake.spool.haraka_config`),
launches ``node haraka/node_modules/Haraka/bin/haraka -c <runtime_dir>`` in its own session,
waits for its 220 banner and records its pid. Stdlib only; no Dagster imports.

Runtime directory layout::

    config/  plugins/     what Haraka reads
    haraka.pid            pid of the running server
    haraka.json           the HarakaConfig it was started with
    haraka.log            its stdout and stderr
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mail_pipeline.errors import ConfigError, MailPipelineError
from mail_pipeline.intake.problems import ConfigProblemError, escaped
from mail_pipeline.intake.spool.haraka_config import (
    HarakaConfig,
    HarakaProblem,
    find_haraka_dir,
    haraka_entry,
    prepare_runtime,
    prepare_spool,
)
from mail_pipeline.platform.process import pid_alive

__all__ = [
    "HarakaError",
    "HarakaListenError",
    "HarakaProcess",
    "HarakaStartError",
    "start",
    "status",
    "stop",
]

PID_FILE = "haraka.pid"
STATE_FILE = "haraka.json"
LOG_FILE = "haraka.log"


class HarakaError(MailPipelineError):
    """The Haraka server could not be started, stopped or reached."""


class HarakaStartError(HarakaError):
    """Haraka did not come up: the port is taken, it exited, or it never sent its banner."""


class HarakaListenError(HarakaStartError, ConfigProblemError):
    """Haraka cannot listen where its config says: the problem is keyed by the field to
    change (``port``: taken or privileged; ``host``: unknown, or not an address of this
    machine); it is made as a ConfigProblemError is."""


@dataclass
class HarakaProcess:
    """A Haraka server started by :func:`start`."""

    config: HarakaConfig
    pid: int
    runtime_dir: Path
    log_path: Path
    started_in: float  # seconds from launch to the 220 banner
    popen: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """Return the address the server listens on."""
        return self.config.host

    @property
    def port(self) -> int:
        """Return the port the server listens on."""
        return self.config.port

    def is_running(self) -> bool:
        """Return whether the server process is still alive."""
        return _alive(self.pid)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the server (see :func:`stop`); return whether it was running."""
        return stop(self.runtime_dir, timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of the server's log."""
        return _tail(self.log_path, lines)


# Children started by this Python process: their pids stay zombies until waited for, so
# liveness must be asked of the Popen object rather than of the kernel.
_children: dict[int, subprocess.Popen[bytes]] = {}


# --- start / stop / status ------------------------------------------------------------------


def start(config: HarakaConfig) -> HarakaProcess:
    """Start a Haraka server for ``config`` and wait until it sends its 220 banner.

    Returns:
        The running server; its pid is also written to ``<runtime_dir>/haraka.pid``.

    Raises:
        ConfigError: node or Haraka's node_modules is missing, or the config is invalid.
        SpoolError: the spool or runtime directory cannot be created or written.
        HarakaListenError: the port is in use or needs privileges, or the host cannot be
            listened on (a :class:`HarakaStartError` keyed by field).
        HarakaStartError: a server of this runtime directory is already running, Haraka
            exited during start (the message holds its log's tail), or no banner came
            within ``config.start_timeout`` seconds.
    """
    haraka_dir = find_haraka_dir()
    node, script = haraka_entry(haraka_dir)
    runtime = config.resolved_runtime_dir

    current = status(runtime)
    if current["running"]:
        raise HarakaStartError(
            f"Haraka of {runtime} is already running (pid {current['pid']}, port {current['port']})"
        )
    _check_port_free(config.host, config.port)
    prepare_spool(config.spool_dir)
    prepare_runtime(config, haraka_dir)

    log_path = runtime / LOG_FILE
    env = dict(os.environ)
    env.update(config.extra_env)
    env["MAIL_PIPELINE_SPOOL_DIR"] = str(config.spool_dir)
    launched = time.monotonic()
    with open(log_path, "ab") as log:
        log.write(f"--- mail_pipeline: starting Haraka on {config.host}:{config.port}\n".encode())
        log.flush()
        try:
            popen = subprocess.Popen(
                [node, str(script), "-c", str(runtime)],
                cwd=runtime,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the CLI that started it; no terminal signals
            )
        except OSError as exc:
            raise ConfigError(f"cannot run {node}: {exc}") from exc
    _children[popen.pid] = popen
    (runtime / PID_FILE).write_text(f"{popen.pid}\n", encoding="ascii")
    state = asdict(config)
    state.update(
        spool_dir=str(config.spool_dir),
        runtime_dir=str(runtime),
        domains=list(config.domains),
        pid=popen.pid,
        started_at=time.time(),
    )
    (runtime / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")

    try:
        _wait_for_banner(popen, config, log_path)
    except BaseException:
        _terminate(popen.pid, timeout=5.0)
        _forget(runtime)
        raise
    return HarakaProcess(
        config=config,
        pid=popen.pid,
        runtime_dir=runtime,
        log_path=log_path,
        started_in=time.monotonic() - launched,
        popen=popen,
    )


def stop(runtime_dir: Path | str, timeout: float = 10.0) -> bool:
    """Stop the Haraka server of ``runtime_dir``: SIGTERM, then SIGKILL after ``timeout``.

    Returns:
        True if a server was running and has been stopped, False if none was running (a
        stale pid file is removed either way).

    Raises:
        HarakaError: the process survived SIGKILL or cannot be signalled.
    """
    runtime = Path(runtime_dir).resolve()
    pid = _read_pid(runtime)
    if pid is None or not _alive(pid) or not _is_haraka(pid):
        _forget(runtime)
        return False
    _terminate(pid, timeout=timeout)
    _forget(runtime)
    return True


def status(runtime_dir: Path | str) -> dict[str, Any]:
    """Describe the Haraka server of ``runtime_dir``.

    Returns:
        ``{"running": bool, "pid": int | None, "host": str | None, "port": int | None,
        "spool_dir": str | None, "domains": list[str], "runtime_dir": str,
        "log": str}``; ``pid`` is None when no live Haraka process owns the pid file.
    """
    runtime = Path(runtime_dir).resolve()
    pid = _read_pid(runtime)
    running = pid is not None and _alive(pid) and _is_haraka(pid)
    state: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        state = json.loads((runtime / STATE_FILE).read_text(encoding="utf-8"))
    return {
        "running": running,
        "pid": pid if running else None,
        "host": state.get("host"),
        "port": state.get("port"),
        "spool_dir": state.get("spool_dir"),
        "domains": state.get("domains", []),
        "runtime_dir": str(runtime),
        "log": str(runtime / LOG_FILE),
    }


# --- helpers --------------------------------------------------------------------------------


#: The bind errors that are the port's fault; any other is the host's.
_PORT_ERRNOS = (errno.EADDRINUSE, errno.EACCES)


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            field = "port" if exc.errno in _PORT_ERRNOS else "host"
            reason = escaped(exc.strerror or str(exc))
            where = escaped(f"{host}:{port}")
            problem = HarakaProblem(field, f"{{field}}: cannot listen on {where}: {reason}")
            raise HarakaListenError([problem]) from exc


def _wait_for_banner(popen: subprocess.Popen[bytes], config: HarakaConfig, log_path: Path) -> None:
    """Poll until the server answers with a 220 banner; raise HarakaStartError otherwise."""
    deadline = time.monotonic() + config.start_timeout
    delay = 0.02
    last_error = "no answer"
    while time.monotonic() < deadline:
        code = popen.poll()
        if code is not None:
            raise HarakaStartError(
                f"Haraka exited with status {code} during start; last lines of {log_path}:\n"
                + _tail(log_path, 30)
            )
        try:
            with socket.create_connection((config.host, config.port), timeout=2.0) as sock:
                sock.settimeout(2.0)
                banner = sock.recv(512)
                with contextlib.suppress(OSError):
                    sock.sendall(b"QUIT\r\n")
            if banner.startswith(b"220"):
                return
            last_error = f"unexpected greeting {banner[:80]!r}"
        except OSError as exc:
            last_error = str(exc)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)
    raise HarakaStartError(
        f"Haraka sent no 220 banner on {config.host}:{config.port} within "
        f"{config.start_timeout:g} s ({last_error}); last lines of {log_path}:\n"
        + _tail(log_path, 30)
    )


def _read_pid(runtime: Path) -> int | None:
    try:
        return int((runtime / PID_FILE).read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Return whether ``pid`` runs: a child of ours by its Popen, any other by the kernel."""
    popen = _children.get(pid)
    if popen is not None:
        return popen.poll() is None
    return pid_alive(pid)


def _is_haraka(pid: int) -> bool:
    """Return whether ``pid`` runs Haraka, so a stale pid file never signals a stranger."""
    if pid in _children:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid file
    # node .../Haraka/bin/haraka -c <runtime>: an argument that is Haraka's bin script
    return any(os.path.basename(arg) == b"haraka" for arg in cmdline.split(b"\0"))


def _terminate(pid: int, timeout: float) -> None:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        except PermissionError as exc:
            raise HarakaError(f"cannot signal Haraka (pid {pid}): {exc}") from exc
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.02)
        else:
            continue
        break
    popen = _children.pop(pid, None)
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=1.0)
    if _alive(pid):
        raise HarakaError(f"Haraka (pid {pid}) is still running after SIGKILL")


def _forget(runtime: Path) -> None:
    with contextlib.suppress(OSError):
        (runtime / PID_FILE).unlink()


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
