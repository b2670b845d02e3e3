"""Give freed heap memory back to the operating system after a big message.

Parsing a multipart message of N bytes makes one transient copy of it (the latin-1 text the
MIME scanner reads). glibc serves an allocation that big from its heap once its dynamic mmap
threshold has grown (up to 32 MiB), and keeps the pages when it is freed; the next big
allocations (the database driver's copies of the raw bytes) are then made beside them
instead of in them, since the small buffers allocated in between have split the free block.
:func:`release_free_memory` (glibc's ``malloc_trim(0)``) returns every free page, so the
resident memory of the process after a parse is what the result holds. Elsewhere (another C
library) it does nothing.

:func:`map_big_allocations` keeps it from happening in the first place while big messages are
parsed: it fixes glibc's mmap threshold at :data:`BIG_ALLOCATION`, so every buffer that big
(a message, a decoded body, the pieces of its text) is mapped on its own and unmapped when
freed, and the peak resident memory of a big message is what is alive at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

__all__ = ["BIG_ALLOCATION", "map_big_allocations", "release_free_memory"]

#: Allocations of at least this many bytes get their own mapping (see :func:`map_big_allocations`).
BIG_ALLOCATION = 1 << 20
#: glibc's mallopt() parameter number for the mmap threshold.
_M_MMAP_THRESHOLD = -3


@functools.cache
def _libc() -> Any:
    """Return the C library, None when it cannot be loaded."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


@functools.cache
def map_big_allocations() -> bool:
    """Have glibc map every allocation of :data:`BIG_ALLOCATION` bytes or more on its own from
    now on (its mmap threshold fixed there, no longer raised by the big blocks it frees); once
    per process. Returns False where the C library has no ``mallopt`` or refuses.

    Small allocations are untouched, so the cost is one ``mmap``/``munmap`` per big buffer.
    """
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, BIG_ALLOCATION))


@functools.cache
def _malloc_trim() -> Any:
    """Return glibc's ``malloc_trim``, None when the C library has none."""
    libc = _libc()
    return getattr(libc, "malloc_trim", None) if libc is not None else None


def release_free_memory() -> bool:
    """Return the heap's free pages to the operating system; False where that is not possible.

    Takes a few milliseconds for a heap of a few hundred MiB (it walks the free lists), so it
    is meant for after a big message, not after every one.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
