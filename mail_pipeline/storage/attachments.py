"""Attachment files on disk: safe names, unique paths, written before the database commit.

Layout: ``<root>/<user id>/<2 hex>/<16 hex>_<safe filename>``. The random prefix makes every
path unique, so two attachments called ``report.pdf`` never overwrite each other, and files are
created with ``O_EXCL`` so even a clash of random names cannot overwrite. Files are made durable
in one step per batch (:meth:`AttachmentStorage.sync`) before the database commit. A name from
a message can never leave the root: path separators, ``..``, control characters and reserved
device names are removed before it is used, and the name is short enough in UTF-8 bytes for
the 255-byte name limit of common file systems whatever its script.

A write that fails because of the file system (full, over quota, read-only, permission, I/O
error) raises :class:`~mail_pipeline.errors.StorageUnavailable`: no message can be stored
until it is fixed, so the caller puts its work back. Any other failure (a name the file system
refuses, ...) raises :class:`~mail_pipeline.errors.SaveError`: only that message is affected.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import mimetypes
import os
import re
import secrets
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from mail_pipeline.errors import SaveError, StorageUnavailable

#: errno values that say the attachment file system cannot take files now, whatever the
#: message: out of space or quota, read-only, permission refused, I/O error, out of handles.
ENVIRONMENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.EIO,
        errno.EMFILE,
        errno.ENFILE,
    }
)

MAX_NAME_LENGTH = 150
# File systems limit a name to 255 *bytes* (ext4, XFS, btrfs, ZFS, APFS), and 150 CJK
# characters or emoji are 450-600 bytes of UTF-8. With the ``<16 hex>_`` prefix of
# AttachmentStorage.write the name on disk is at most 17 + 200 = 217 bytes.
MAX_NAME_BYTES = 200
MAX_DISK_NAME_BYTES = 255
# Lone surrogates (undecodable bytes smuggled through a str) cannot be encoded as UTF-8.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*\ud800-\udfff]+')
_SPACES = re.compile(r"\s+")
_RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(1, 10)),
    *(f"lpt{i}" for i in range(1, 10)),
}


def safe_filename(name: str | None, content_type: str = "application/octet-stream") -> str:
    """Return a file name that is safe to create on any common file system.

    Keeps the readable part of ``name`` (Unicode letters stay), drops any directory part,
    path separators, control characters and leading dots, caps the length at 150 characters
    and :data:`MAX_NAME_BYTES` bytes of UTF-8 while keeping the extension (a cut never splits
    a character, nor separates a base letter from its combining marks), and falls back to
    ``attachment`` plus an extension guessed from ``content_type`` when nothing usable is left.
    Applying it to its own result returns that result unchanged.

    Returns:
        The safe name; ``<16 hex>_<name>`` always fits in :data:`MAX_DISK_NAME_BYTES` bytes.
    """
    text = unicodedata.normalize("NFKC", name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = _UNSAFE.sub("_", text)
    text = _SPACES.sub(" ", text).strip().lstrip(".").strip()
    stem, dot, ext = text.rpartition(".")
    if not dot:
        stem, ext = text, ""
    if stem.lower() in _RESERVED:
        stem = f"_{stem}"
    if not stem.strip("_ ."):
        stem = "attachment"
        if not ext:
            guessed = mimetypes.guess_extension(content_type.split(";")[0].strip().lower())
            ext = (guessed or "").lstrip(".")
    ext = _cut(ext, 16, 64)
    reserved = len(ext.encode("utf-8")) + 1 if ext else 0
    stem = _cut(stem, MAX_NAME_LENGTH - (len(ext) + 1 if ext else 0), MAX_NAME_BYTES - reserved)
    stem = stem.rstrip(" .") or "attachment"
    return f"{stem}.{ext}" if ext else stem


def _extends(char: str) -> bool:
    """Whether ``char`` belongs to the character before it (combining mark, joiner, modifier)."""
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")
        or char in "\u200c\u200d"
        or "\U0001f3fb" <= char <= "\U0001f3ff"  # emoji skin-tone modifiers
    )


def _cut(text: str, max_chars: int, max_bytes: int) -> str:
    """Return the longest prefix of ``text`` within ``max_chars`` characters and ``max_bytes``
    bytes of UTF-8 that ends on a whole character: never inside a multi-byte sequence, never
    between a letter and its combining marks, never just after a zero-width joiner."""
    cut = text[:max_chars]
    encoded = cut.encode("utf-8")
    if len(encoded) > max_bytes:
        # the tail is valid UTF-8 cut short: "ignore" drops only the partial last character
        cut = encoded[:max_bytes].decode("utf-8", "ignore")
    n = len(cut)
    while 0 < n < len(text) and (_extends(text[n]) or text[n - 1] == "\u200d"):
        n -= 1
    return text[:n]


def storage_error(action: str, exc: OSError) -> SaveError | StorageUnavailable:
    """Return the error to raise for ``exc``, raised while doing ``action``.

    Returns:
        :class:`StorageUnavailable` when ``exc.errno`` is one of :data:`ENVIRONMENT_ERRNOS`
        (the file system, not the message, is at fault), else :class:`SaveError`.
    """
    text = f"{action}: {exc}"
    if exc.errno in ENVIRONMENT_ERRNOS:
        return StorageUnavailable(text)
    return SaveError(text)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(path: Path) -> bool:
    """``syncfs(2)`` the file system holding ``path``; False when the platform lacks it."""
    libc = _libc()
    if libc is None:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return True
    finally:
        os.close(fd)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    return libc if hasattr(libc, "syncfs") else None


class AttachmentStorage:
    """Writes and removes attachment files under one root directory."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        """Use ``root`` (created if missing). ``fsync`` makes each file durable before commit.

        Raises:
            StorageUnavailable: the root cannot be created because of the file system.
            SaveError: the root cannot be created for another reason.
        """
        self.root = Path(root).expanduser().resolve()
        self.fsync = fsync
        #: sub-folders (``user/xx``) this object created or found: not made again per file
        self._folders: set[str] = set()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(f"cannot create attachment root {self.root}", exc) from exc

    def write(
        self,
        user_id: int,
        filename: str,
        content: bytes | Iterable[bytes],
        *,
        sync: bool = True,
    ) -> str:
        """Write ``content`` under a new unique path for ``user_id`` and return that path.

        ``content`` is the bytes, or an iterable of chunks written one after the other (a big
        attachment is never whole in memory). ``filename`` must already be safe (see
        :func:`safe_filename`). The returned path is
        relative to the root, ``/``-separated: it is what the store records. ``sync=False``
        leaves durability to a later :meth:`sync` of the whole batch.

        Raises:
            StorageUnavailable: the file system cannot take files (see
                :data:`ENVIRONMENT_ERRNOS`); nothing is left behind.
            SaveError: this file cannot be written (its name is refused, ...); nothing is
                left behind.
        """
        if filename != safe_filename(filename):
            raise ValueError(f"not a safe file name: {filename!r}")
        for _ in range(5):
            token = secrets.token_hex(8)
            folder = f"{int(user_id)}/{token[:2]}"
            relative = f"{folder}/{token}_{filename}"
            path = self.root / relative  # an int, hex and a safe name: it cannot leave the root
            try:
                fd = self._create(folder, path)
            except FileExistsError:
                continue
            except OSError as exc:
                raise storage_error(f"cannot write attachment {relative}", exc) from exc
            try:
                with os.fdopen(fd, "wb") as handle:
                    if isinstance(content, bytes | bytearray | memoryview):
                        handle.write(content)
                    else:
                        for chunk in content:
                            handle.write(chunk)
                    if self.fsync and sync:
                        handle.flush()
                        os.fsync(handle.fileno())
            except OSError as exc:
                self.remove([relative])
                raise storage_error(f"cannot write attachment {relative}", exc) from exc
            except BaseException:  # the chunks' producer failed: no partial file stays
                self.remove([relative])
                raise
            return relative
        raise SaveError("could not find a free attachment path after 5 tries")

    def _create(self, folder: str, path: Path) -> int:
        """Create ``path`` exclusively in ``folder`` and return its descriptor; the folder is
        made only the first time it is used (again if it was removed since, by
        :meth:`remove` or another process)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        if folder in self._folders:
            try:
                return os.open(path, flags, 0o640)
            except FileNotFoundError:
                self._folders.discard(folder)
        for attempt in range(3):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, flags, 0o640)
            except FileNotFoundError:
                # Another writer's remove() pruned the folder between the two calls.
                if attempt == 2:
                    raise
                continue
            self._folders.add(folder)
            return fd
        raise AssertionError("unreachable")

    def sync(self, relatives: Iterable[str]) -> None:
        """Make the given files (and their directory entries) durable, in as few calls as possible.

        Uses one ``syncfs`` of the attachment file system when the C library has it (Linux),
        else one ``fsync`` per file and per directory. Does nothing when ``fsync`` is off.

        Raises:
            StorageUnavailable: the data could not be flushed (whatever the errno: a batch's
                files cannot be told apart, and a failed flush is the file system's fault).
        """
        paths = list(relatives)
        if not self.fsync or not paths:
            return
        try:
            if _syncfs(self.root):
                return
            for directory in {self.path_of(p).parent for p in paths}:
                _fsync_path(directory)
            for relative in paths:
                _fsync_path(self.path_of(relative))
        except OSError as exc:
            raise StorageUnavailable(f"cannot flush attachment files: {exc}") from exc

    def path_of(self, relative: str) -> Path:
        """Return the absolute path of a stored ``relative`` path.

        Raises:
            ValueError: the path would leave the root.
        """
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"attachment path {relative!r} leaves the attachment root")
        return path

    def remove(self, relatives: Iterable[str]) -> None:
        """Delete the given files and the directories they leave empty (missing ones are fine)."""
        for relative in relatives:
            with contextlib.suppress(ValueError, OSError):
                path = self.path_of(relative)
                path.unlink(missing_ok=True)
                parent = path.parent
                while parent != self.root and parent.is_relative_to(self.root):
                    try:
                        parent.rmdir()
                    except OSError:
                        break
                    self._folders.discard(parent.relative_to(self.root).as_posix())
                    parent = parent.parent

    def iter_files(self) -> Iterable[str]:
        """Yield the relative path of every file under the root."""
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                yield Path(dirpath, name).relative_to(self.root).as_posix()
