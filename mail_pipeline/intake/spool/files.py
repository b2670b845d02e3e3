"""Safe file operations of the spool: read without following links, write then rename, fsync.

Nothing in the spool is followed: files are opened with ``O_NOFOLLOW`` and examined with
``lstat``; a move never overwrites (see :func:`rename_noreplace`, :func:`rename_new` and
:func:`free_stem`).

No-overwrite renames use Linux's ``renameat2(RENAME_NOREPLACE)``: ONE system call that moves
the file only if the destination name is free, atomically, where ``lstat`` + ``rename`` takes
two and leaves a window for another writer in between. Where it is not available (not Linux,
a C library without ``renameat2``, a file system that refuses the flag) the fallback is the
``lstat`` check then ``rename``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from mail_pipeline.errors import SpoolError

StrPath = str | os.PathLike[str]

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _load_renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    """Return libc's ``renameat2`` (Linux), or None when this platform has none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    function.restype = ctypes.c_int
    renameat2: Callable[[int, bytes, int, bytes, int], int] = function
    return renameat2


_renameat2 = _load_renameat2()


class FileTooLarge(Exception):
    """A spool file is larger than the size limit (raised before it is read)."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"message is {size} bytes, the limit is {limit} bytes")


def utc_now() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


def is_regular(path: Path) -> bool:
    """True if ``path`` exists and is a regular file (a symlink is not followed: False)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def read_nofollow(path: Path, limit: int | None = None) -> bytes:
    """Return the bytes of the regular file ``path``, refusing to follow a symlink.

    Raises:
        SpoolError: ``path`` is a symlink or not a regular file.
        FileTooLarge: ``limit`` is given and the file is larger (nothing is read).
        FileNotFoundError: it is gone.
    """
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SpoolError(f"{path.name} is a symlink") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SpoolError(f"{path.name} is not a regular file")
        if limit is not None and st.st_size > limit:
            raise FileTooLarge(st.st_size, limit)
        chunks = []
        while True:
            chunk = os.read(fd, max(st.st_size + 1, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            if limit is not None and sum(map(len, chunks)) > limit:
                raise FileTooLarge(sum(map(len, chunks)), limit)
        return b"".join(chunks)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make the renames into directory ``path`` durable (best effort on odd file systems)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_new_file(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Write ``data`` to ``path.tmp`` then rename it to ``path`` (readers see all or nothing).

    Raises:
        OSError: the file cannot be written.
    """
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def rename_noreplace(src: StrPath, dst: StrPath) -> None:
    """Rename ``src`` to ``dst`` only if no entry is named ``dst`` (a dangling link counts).

    One ``renameat2(RENAME_NOREPLACE)`` call where available (see the module docstring),
    else ``lstat`` then ``rename``.

    Raises:
        FileExistsError: ``dst`` exists; nothing was moved.
        FileNotFoundError: ``src`` is gone, or ``dst``'s directory does not exist.
        OSError: any other failure of the rename.
    """
    global _renameat2
    if _renameat2 is not None:
        old, new = os.fsencode(src), os.fsencode(dst)
        if _renameat2(_AT_FDCWD, old, _AT_FDCWD, new, _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(code, os.strerror(code), os.fsdecode(old), None, os.fsdecode(new))
        if code == errno.ENOSYS:  # the kernel has no renameat2: never again in this process
            _renameat2 = None
        # EINVAL: this file system refuses the flag; the fallback below does the same job.
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(dst))
    os.rename(src, dst)


def rename_new(src: StrPath, dst: StrPath) -> None:
    """Rename ``src`` to ``dst``, refusing to replace an existing ``dst``.

    Raises:
        SpoolError: ``dst`` exists (a file, a symlink, anything).
        FileNotFoundError: ``src`` is gone.
    """
    try:
        rename_noreplace(src, dst)
    except FileExistsError:
        raise SpoolError(f"refusing to overwrite {dst}") from None


def free_stem(folder: Path, stem: str) -> str:
    """Return ``stem``, or ``stem~N`` (smallest N), whose pair names are free in ``folder``."""
    candidate = stem
    n = 0
    while os.path.lexists(folder / f"{candidate}.eml") or os.path.lexists(
        folder / f"{candidate}.meta"
    ):
        n += 1
        candidate = f"{stem}~{n}"
    return candidate


def count_suffix(folder: Path, suffix: str) -> int:
    """Return how many entries of ``folder`` have a name ending in ``suffix``."""
    with os.scandir(folder) as entries:
        return sum(1 for e in entries if e.name.endswith(suffix))
