"""Give freed heap memory back to the operating system after a big message.

Parsing a multipart message of N bytes makes one transient copy of it (the latin-1 text the
MIME scanner reads). glibc serves an allocation that big from its heap once its dynamic mmap
threshold has grown (up to 32 MiB), and keeps the pages when it is freed; the next big
allocations (the database driver's copies of the raw bytes) are then made beside them
instead of in them, since the small buffers allocated in between have split the free block.
:func:`release_free_memory` (glibc's ``malloc_trim(0)``) returns every free page, so the
resident memory of the process after a parse is what the result holds. Elsewhere (another C
library) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

__all__ = ["release_free_memory"]


@functools.cache
def _malloc_trim() -> Any:
    """Return glibc's ``malloc_trim``, None when the C library has none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None


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
