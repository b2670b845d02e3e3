"""Is a process alive? One answer for every part that records a pid (spool claims, Haraka).

A pid alone can be reused after its process died, so a caller that recorded the process's
start time (field 22 of ``/proc/<pid>/stat``, see :func:`process_start`) passes it along and a
different process that has since taken the pid counts as dead.
"""

from __future__ import annotations

import os
from pathlib import Path


def process_start(pid: int) -> str | None:
    """Return the start time of process ``pid`` in clock ticks since boot, as text.

    Returns:
        The start time; ``"?"`` when ``/proc`` cannot tell (no such file system); None when
        there is no such process, or it is a zombie (it has exited and waits to be reaped).
    """
    stat_path = Path(f"/proc/{pid}/stat")
    try:
        stat = stat_path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None if Path("/proc/self/stat").exists() else "?"
    except ProcessLookupError:  # it exited while its stat file was being read
        return None
    except OSError:
        return "?"
    fields = stat.rsplit(")", 1)[-1].split()
    if not fields or fields[0] == "Z":
        return None
    return fields[19] if len(fields) > 19 else "?"


def pid_alive(pid: int, start: str = "") -> bool:
    """True while process ``pid`` runs (and, when ``start`` is given, is the same process).

    Args:
        pid: the process id.
        start: the start time recorded with the pid (see :func:`process_start`); ``""`` or
            ``"?"`` when it was not recorded, and then any live process with that pid counts.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    current = process_start(pid)
    if current is None:
        return False
    return current == "?" or start in ("", "?") or current == start
