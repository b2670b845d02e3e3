"""The one pid-liveness check: live, reaped, zombie and reused pids (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from mail_pipeline.platform.process import pid_alive, process_start


def wait_until_zombie(pid: int) -> None:
    """Wait (bounded) until ``pid`` has exited but is not reaped yet."""
    for _ in range(500):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never became a zombie")


def test_a_live_process() -> None:
    start = process_start(os.getpid())
    assert start is not None and start.isdigit()
    assert pid_alive(os.getpid())
    assert pid_alive(os.getpid(), start)
    assert pid_alive(os.getpid(), "?")  # start not recorded: any live process counts


def test_a_dead_and_reaped_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_start(child.pid) is None
    assert not pid_alive(child.pid)
    assert not pid_alive(0) and not pid_alive(-1)


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        wait_until_zombie(child.pid)
        os.kill(child.pid, 0)  # the kernel still knows the pid ...
        assert process_start(child.pid) is None  # ... but it is not running
        assert not pid_alive(child.pid)
    finally:
        child.wait()


def test_a_reused_pid_with_another_start_time_is_not_the_owner() -> None:
    child = subprocess.Popen(["sleep", "60"])
    try:
        start = process_start(child.pid)
        assert start is not None and start.isdigit()
        assert pid_alive(child.pid, start)
        other = str(int(start) + 1)  # what a recycled pid's new process would show
        assert not pid_alive(child.pid, other)
    finally:
        child.kill()
        child.wait()
