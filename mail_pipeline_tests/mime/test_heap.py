"""Tests of mail_pipeline.mime.heap: freed memory goes back to the operating system."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter: how a long-lived test process's heap is laid out is not known.
_SCENARIO = """
import sys
from mail_pipeline.mime.heap import release_free_memory

def rss_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

# Blocks under the mmap threshold come from the heap; each is followed by a small block that
# stays, so the freed ones are holes glibc cannot give back by lowering its top.
blocks, pins = [], []
for _ in range(800):  # 50 MiB, every page touched
    blocks.append(bytearray(64 * 1024))
    pins.append(bytearray(1024))  # above pymalloc's 512 bytes: from malloc, after it
del blocks
before = rss_kib()
released = release_free_memory() if sys.argv[1] == "release" else True
print(released, before - rss_kib())
"""


def _run(scenario: str, mode: str) -> list[str]:
    """Run ``scenario`` in a fresh interpreter with argument ``mode``; return its output words."""
    done = subprocess.run(
        [sys.executable, "-c", scenario, mode],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.split()


def _freed_kib(mode: str) -> tuple[str, int]:
    released, freed = _run(_SCENARIO, mode)
    return released, int(freed)


def test_free_heap_pages_are_released_with_glibc() -> None:
    assert platform.libc_ver()[0] == "glibc"  # the deployment targets (Debian) use glibc
    assert _freed_kib("keep")[1] < 5 * 1024  # without it the holes stay resident
    released, freed = _freed_kib("release")
    assert released == "True" and freed > 40 * 1024


_MAPPED = """
import sys
from mail_pipeline.mime.heap import map_big_allocations

def rss_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

if sys.argv[1] == "map":
    assert map_big_allocations() and map_big_allocations()  # once; again is a no-op
big = bytearray(24 * 1024 * 1024)
del big  # glibc frees a mapped block and raises its threshold to its size ...
blocks, pins = [], []
for _ in range(10):  # ... so these 40 MiB would come from the heap, pinned by small blocks
    blocks.append(bytearray(4 * 1024 * 1024))
    pins.append(bytearray(1024))
before = rss_kib()
del blocks
print(before - rss_kib())
"""


def _unmapped_kib(mode: str) -> int:
    (freed,) = _run(_MAPPED, mode)
    return int(freed)


def test_big_allocations_are_mapped_apart_and_given_back_when_freed() -> None:
    assert _unmapped_kib("keep") < 5 * 1024  # glibc's own threshold keeps them resident
    assert _unmapped_kib("map") > 38 * 1024
