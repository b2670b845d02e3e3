"""The Haraka spool on disk: layout, claims, moves, quarantine (no parsing, no database).

Layout
------
The spool root holds (missing ones are created by :meth:`Spool.open`)::

    inbox/       Haraka renames <id>.eml, then <id>.meta (the READY MARKER) into it
    tmp/         Haraka's <id>.eml.tmp / <id>.meta.tmp while it writes (we never read it)
    claims/      claims/<claim id>/: the pairs an ingester has taken and is working on
    processed/   processed/<YYYY-MM-DD>/<id>.eml + .meta, stored in the database; the date
                 is the UTC day of the meta's ``received_at`` (so one directory never grows
                 without bound, and the place of a pair follows from its meta alone)
    failed/      <id>.eml + <id>.meta + <id>.error.json (reason code, detail, time, the meta)
    unmatched/   <id>.eml + <id>.meta: mail for no known user, kept (never deleted)

``<id>`` is Haraka's UUID4. An ``.eml`` without its ``.meta`` is not a message yet and is
never touched, except a **legacy** file: the seed system wrote plain ``.eml`` files without
meta into ``inbox/``. An ``.eml`` whose stem is NOT a UUID, has no ``.meta`` and is older
than the legacy grace period (default 5 minutes, so a writer has finished) is claimed with a
synthesised meta (``"legacy": true``, ``received_at`` = the file's mtime) and routed by its
header recipients (To, Cc, Bcc, Delivered-To, X-Original-To) instead of the envelope. A
UUID-named ``.eml`` without meta is Haraka's (it died between the two renames, and its client
got no 250 and will retry): it is left alone and reported as stale by :meth:`Spool.status`
once older than an hour.

Claims: who owns a file
-----------------------
Every ingest pass makes its own claim folder ``claims/<host>+<pid>+<start>+<random>/``
(``<start>`` is the process start time from ``/proc/<pid>/stat``, so a recycled pid is not
mistaken for the owner). A pair is claimed by renaming its ``.meta`` into that folder FIRST:
``rename`` is atomic, so when two ingesters race for a pair exactly one rename succeeds and
the other gets ``FileNotFoundError`` and skips the pair. The ``.eml`` follows.

Recovery rule: a claim folder that is not our own is **stale**, and its files go back to
``inbox/``, when (a) it names this host and its process is gone (no such pid, or a pid with a
different start time), or (b) its lease expired: the folder's mtime, which its owner touches
at every batch and which every rename in or out of it refreshes, is older than
``lease_seconds`` (default 15 minutes; this is the only rule for owners on another host that
shares the spool). A live ingester's folder is never emptied under rule (a); should rule (b)
ever fire on a live but stuck ingester, nothing is lost or doubled: its later moves fail
with ``FileNotFoundError`` (reported), and the returned files are stored by the next pass,
where the store's dedup turns any already committed message into a duplicate.

Returning a claim: ``.eml`` files go back first, then each ``.meta`` (the ready marker last).
A ``.meta`` whose ``.eml`` is already gone was caught between the two renames of a final
move (the ``.eml`` always moves first): it is put beside its ``.eml`` in ``failed/``,
``unmatched/`` or ``processed/<day>/``; if that ``.eml`` is nowhere the meta goes to
``failed/`` with reason ``missing_eml``. Temp files of a claim (``*.tmp``) are deleted.

Safety
------
Nothing in the spool is followed: entries are examined with ``lstat``/``DirEntry`` without
following links and files are opened with ``O_NOFOLLOW``. A symlink or other non-regular
``.eml``/``.meta`` is **refused**: left where it is, counted and reported, never read or
moved (its target is never touched). A move never overwrites: when the destination name is
taken (a legacy name seen twice) the pair gets a ``~N`` suffix.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mail_pipeline.errors import SpoolError

SUBDIRS = ("inbox", "processed", "failed", "unmatched", "tmp", "claims")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Stems we are willing to handle at all (no leading dot, no control characters).
_SAFE_STEM = re.compile(r"^[A-Za-z0-9_@+=,-][A-Za-z0-9_@+=,.~-]{0,200}$")
_HOST_SAFE = re.compile(r"[^A-Za-z0-9.-]+")

DEFAULT_LEASE_SECONDS = 15 * 60
DEFAULT_LEGACY_GRACE_SECONDS = 5 * 60
DEFAULT_STALE_EML_SECONDS = 60 * 60

#: Test hook: when ``MAIL_PIPELINE_SPOOL_TEST_PAUSE`` names a point (``after_claim``,
#: ``mid_batch``, ``after_commit``, ``mid_move``), the ingester writes the file named by
#: ``MAIL_PIPELINE_SPOOL_TEST_MARKER`` at that point and sleeps, so a test can SIGKILL it
#: there. Read at call time; unset in production.
PAUSE_ENV = "MAIL_PIPELINE_SPOOL_TEST_PAUSE"
MARKER_ENV = "MAIL_PIPELINE_SPOOL_TEST_MARKER"


def test_pause(point: str) -> None:
    """Pause here (forever, until killed) if the test hook names ``point``; see PAUSE_ENV."""
    if os.environ.get(PAUSE_ENV) != point:
        return
    marker = os.environ.get(MARKER_ENV)
    if marker:
        Path(marker).write_text(f"{os.getpid()} {point}\n")
    while True:  # pragma: no cover - killed by the test
        time.sleep(3600)


# --- small file-system helpers -------------------------------------------------------------


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
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
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


class FileTooLarge(Exception):
    """A spool file is larger than the size limit (raised before it is read)."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"message is {size} bytes, the limit is {limit} bytes")


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


def _process_start(pid: int) -> str | None:
    """Return the start time (clock ticks since boot) of ``pid``, or None if it is not running."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return "?"
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = data.rsplit(b")", 1)[-1].split()
    if len(fields) > 19 and fields[0] != b"Z":
        return fields[19].decode()
    return None if fields and fields[0] == b"Z" else "?"


def _pid_alive(pid: int, start: str) -> bool:
    if Path("/proc/self/stat").exists():
        current = _process_start(pid)
        if current is None:
            return False
        return current == "?" or start in ("", "?") or current == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def hostname() -> str:
    """Return this host's name, made safe for a directory name."""
    return _HOST_SAFE.sub("-", socket.gethostname())[:64] or "host"


# --- claims --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimOwner:
    """Who made a claim folder, parsed from its name ``<host>+<pid>+<start>+<random>``."""

    host: str
    pid: int
    start: str

    @classmethod
    def parse(cls, name: str) -> ClaimOwner | None:
        """Return the owner named by a claim folder name, or None if it is not one of ours."""
        parts = name.split("+")
        if len(parts) != 4 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])


def new_claim_id() -> str:
    """Return a fresh claim id for this process: ``<host>+<pid>+<start>+<random>``."""
    pid = os.getpid()
    start = _process_start(pid) or "?"
    return f"{hostname()}+{pid}+{start if start != '?' else '0'}+{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Item:
    """One claimed pair: ``<stem>.eml`` and ``<stem>.meta`` in a claim folder."""

    stem: str
    eml: Path
    meta: Path
    size: int = 0
    legacy: bool = False


@dataclass
class Problem:
    """A file the pass could not handle normally, with a reason code."""

    path: str
    reason: str
    detail: str = ""


@dataclass
class ClaimStats:
    """What a claim scan saw besides the pairs it took."""

    refused: list[Problem] = field(default_factory=list)
    orphans: list[Problem] = field(default_factory=list)


# --- the spool -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SpoolStatus:
    """A snapshot of the spool (see :meth:`Spool.status`)."""

    inbox_ready: int
    inbox_waiting: int
    processed: int
    failed: int
    unmatched: int
    claims: int
    oldest_inbox_age_seconds: float | None
    stale_claims: list[str]
    stale_eml_without_meta: list[str]
    refused: list[str]

    def as_dict(self) -> dict[str, Any]:
        """Return the status as plain JSON-serialisable data."""
        return {
            "inbox_ready": self.inbox_ready,
            "inbox_waiting": self.inbox_waiting,
            "processed": self.processed,
            "failed": self.failed,
            "unmatched": self.unmatched,
            "claims": self.claims,
            "oldest_inbox_age_seconds": self.oldest_inbox_age_seconds,
            "stale_claims": list(self.stale_claims),
            "stale_eml_without_meta": list(self.stale_eml_without_meta),
            "refused": list(self.refused),
        }


class Spool:
    """The spool directory and its file protocol (see the module docstring)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        legacy_grace_seconds: float = DEFAULT_LEGACY_GRACE_SECONDS,
        stale_eml_seconds: float = DEFAULT_STALE_EML_SECONDS,
    ) -> None:
        """Describe the spool at ``root`` (nothing is created: see :meth:`open`).

        Raises:
            ValueError: a non-positive lease, or a negative grace period.
        """
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")
        if legacy_grace_seconds < 0 or stale_eml_seconds < 0:
            raise ValueError("grace periods must not be negative")
        self.root = Path(root).expanduser().absolute()
        self.lease_seconds = lease_seconds
        self.legacy_grace_seconds = legacy_grace_seconds
        self.stale_eml_seconds = stale_eml_seconds
        self.inbox = self.root / "inbox"
        self.processed = self.root / "processed"
        self.failed = self.root / "failed"
        self.unmatched = self.root / "unmatched"
        self.tmp = self.root / "tmp"
        self.claims = self.root / "claims"

    def open(self) -> Spool:
        """Create the root and its missing sub-directories; return self.

        Raises:
            SpoolError: the root or a sub-directory is a symlink or not a directory, or
                cannot be created.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for sub in SUBDIRS:
                (self.root / sub).mkdir(exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"cannot create the spool at {self.root}: {exc}") from None
        for path in (self.root, *(self.root / sub for sub in SUBDIRS)):
            mode = os.lstat(path).st_mode
            if not stat.S_ISDIR(mode):
                raise SpoolError(f"{path} is a symlink or not a directory; refusing to use it")
        return self

    # --- claim folders -------------------------------------------------------------------

    def new_claim(self) -> Path:
        """Create and return this pass's claim folder ``claims/<claim id>/``.

        Raises:
            SpoolError: it cannot be created.
        """
        for _ in range(5):
            path = self.claims / new_claim_id()
            try:
                path.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                raise SpoolError(f"cannot create a claim folder in {self.claims}: {exc}") from None
            return path
        raise SpoolError("could not create a unique claim folder")

    def heartbeat(self, claim: Path) -> None:
        """Renew the lease of our claim folder (touch its mtime)."""
        with contextlib.suppress(OSError):
            os.utime(claim)

    def is_stale_claim(self, claim: Path, *, now: float | None = None) -> bool:
        """True when ``claim``'s owner is gone or its lease expired (see the module docstring)."""
        try:
            st = os.lstat(claim)
        except FileNotFoundError:
            return False
        if not stat.S_ISDIR(st.st_mode):
            return False
        now = time.time() if now is None else now
        if now - st.st_mtime > self.lease_seconds:
            return True
        owner = ClaimOwner.parse(claim.name)
        if owner is None or owner.host != hostname():
            return False
        if owner.pid == os.getpid() and owner.start == (_process_start(owner.pid) or "0"):
            return False  # our own (a folder of an earlier pass in this process is empty)
        return not _pid_alive(owner.pid, owner.start if owner.start != "0" else "")

    def stale_claims(self, *, exclude: Path | None = None) -> list[Path]:
        """Return the claim folders whose owner is gone, except ``exclude``."""
        out = []
        with os.scandir(self.claims) as entries:
            for entry in entries:
                path = Path(entry.path)
                if path == exclude or not entry.is_dir(follow_symlinks=False):
                    continue
                if self.is_stale_claim(path):
                    out.append(path)
        return sorted(out)

    def recover_claim(self, claim: Path) -> tuple[int, list[Problem]]:
        """Return the files of ``claim`` to ``inbox/`` and remove the folder.

        Returns:
            (pairs returned to the inbox, problems: files that had to go elsewhere or stay).
        """
        problems: list[Problem] = []
        returned = 0
        try:
            names = sorted(os.listdir(claim))
        except FileNotFoundError:
            return 0, problems
        for name in names:  # temp files first: a half-written synthesised meta
            if name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(claim / name)
        for name in names:
            if name.endswith(".eml") and is_regular(claim / name):
                with contextlib.suppress(FileNotFoundError):
                    self._rename(claim / name, self.inbox / name)
        for name in names:
            if not name.endswith(".meta") or not is_regular(claim / name):
                continue
            stem = name[: -len(".meta")]
            meta = claim / name
            if is_regular(self.inbox / f"{stem}.eml"):
                with contextlib.suppress(FileNotFoundError):
                    self._rename(meta, self.inbox / name)
                    returned += 1
                continue
            home = self._find_eml_home(stem, meta)
            with contextlib.suppress(FileNotFoundError):
                if home is not None:
                    self._rename(meta, home / name)
                    problems.append(Problem(str(home / name), "meta_rejoined",
                                            "the .eml had already been moved here"))
                else:
                    self.write_error(stem, "missing_eml", "the .meta has no .eml",
                                     _load_json(meta))
                    self._rename(meta, self.failed / name)
                    problems.append(Problem(str(self.failed / name), "missing_eml",
                                            "the .meta has no .eml"))
        try:
            claim.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            leftover = ", ".join(sorted(os.listdir(claim))[:5])
            problems.append(Problem(str(claim), "claim_not_empty",
                                    f"unexpected files left: {leftover}"))
        fsync_dir(self.inbox)
        return returned, problems

    def _find_eml_home(self, stem: str, meta: Path) -> Path | None:
        candidates = [self.failed, self.unmatched]
        day = processed_day(_load_json(meta))
        candidates.append(self.processed / day)
        for folder in candidates:
            if is_regular(folder / f"{stem}.eml") and not (folder / f"{stem}.meta").exists():
                return folder
        return None

    # --- claiming from the inbox ---------------------------------------------------------

    def iter_claims(
        self, claim: Path, stats: ClaimStats, *, now: float | None = None
    ) -> Iterator[Item]:
        """Stream the inbox, claiming ready pairs (and old legacy files) into ``claim``.

        Yields each claimed :class:`Item` as soon as it is ours; the scan is lazy
        (``os.scandir``), so memory does not depend on the size of the inbox. Symlinks and
        non-regular files are recorded in ``stats.refused`` and left alone; a ``.meta`` whose
        ``.eml`` is missing goes to ``failed/`` (``stats.orphans``).
        """
        now = time.time() if now is None else now
        with os.scandir(self.inbox) as entries:
            for entry in entries:
                name = entry.name
                if name.endswith(".meta"):
                    stem = name[: -len(".meta")]
                    legacy = False
                elif name.endswith(".eml"):
                    stem = name[: -len(".eml")]
                    legacy = True
                else:
                    continue
                if not _SAFE_STEM.match(stem):
                    stats.refused.append(Problem(entry.path, "bad_name", "unexpected file name"))
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        kind = "symlink" if entry.is_symlink() else "not_regular"
                        stats.refused.append(Problem(entry.path, kind, "not a regular file"))
                        continue
                    if legacy:
                        item = self._claim_legacy(entry, stem, claim, stats, now)
                    else:
                        item = self._claim_pair(stem, claim, stats)
                except FileNotFoundError:
                    continue  # taken by someone else meanwhile
                if item is not None:
                    yield item

    def _claim_pair(self, stem: str, claim: Path, stats: ClaimStats) -> Item | None:
        eml_src = self.inbox / f"{stem}.eml"
        try:
            eml_st: os.stat_result | None = os.lstat(eml_src)
        except FileNotFoundError:
            eml_st = None
        eml_mode = eml_st.st_mode if eml_st is not None else None
        if eml_mode is not None and not stat.S_ISREG(eml_mode):
            stats.refused.append(Problem(str(eml_src), "symlink" if stat.S_ISLNK(eml_mode)
                                         else "not_regular", "the .eml is not a regular file"))
            return None
        meta = claim / f"{stem}.meta"
        eml = claim / f"{stem}.eml"
        size = eml_st.st_size if eml_st is not None else 0
        os.rename(self.inbox / f"{stem}.meta", meta)  # THE claim; FileNotFoundError: not ours
        try:
            os.rename(eml_src, eml)
        except FileNotFoundError:
            # Haraka renames the .eml before the .meta, so this .meta is an orphan.
            self.write_error(stem, "missing_eml", "the .meta has no .eml", _load_json(meta))
            self._rename(meta, self.failed / meta.name)
            stats.orphans.append(Problem(str(self.failed / meta.name), "missing_eml",
                                         "the .meta has no .eml"))
            return None
        return Item(stem, eml, meta, size)

    def _claim_legacy(
        self, entry: os.DirEntry[str], stem: str, claim: Path, stats: ClaimStats, now: float
    ) -> Item | None:
        if UUID_RE.match(stem):
            return None  # Haraka's; its .meta is the ready marker
        st = entry.stat(follow_symlinks=False)
        if now - st.st_mtime < self.legacy_grace_seconds:
            return None
        if os.path.lexists(self.inbox / f"{stem}.meta"):
            return None  # a ready pair: claimed through its .meta
        eml = claim / f"{stem}.eml"
        os.rename(entry.path, eml)  # the claim of a legacy file
        received = datetime.fromtimestamp(st.st_mtime, UTC)
        record = {
            "id": stem,
            "legacy": True,
            "mail_from": "",
            "rcpt_to": [],
            "received_at": received.isoformat().replace("+00:00", "Z"),
            "size": st.st_size,
            "remote_ip": None,
            "helo": None,
            "haraka_uuid": None,
        }
        meta = claim / f"{stem}.meta"
        write_new_file(meta, (json.dumps(record) + "\n").encode())
        return Item(stem, eml, meta, st.st_size, legacy=True)

    # --- moves ---------------------------------------------------------------------------

    def move_pair(self, item: Item, folder: Path) -> Path:
        """Move ``item``'s ``.eml`` then its ``.meta`` into ``folder`` (created if missing).

        Never overwrites: a taken name gets a ``~N`` suffix. Returns the new ``.eml`` path.

        Raises:
            FileNotFoundError: the claim was taken over (the files are no longer ours).
        """
        stem = self._free_stem(folder, item.stem)
        try:
            os.rename(item.eml, folder / f"{stem}.eml")
        except FileNotFoundError:
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
                os.rename(item.eml, folder / f"{stem}.eml")
            else:
                raise
        os.rename(item.meta, folder / f"{stem}.meta")
        return folder / f"{stem}.eml"

    def processed_folder(self, meta: dict[str, Any] | None) -> Path:
        """Return ``processed/<day>/`` for a meta (the UTC day of its ``received_at``)."""
        return self.processed / processed_day(meta)

    def write_error(
        self, stem: str, reason: str, detail: str, meta: dict[str, Any] | None
    ) -> Path:
        """Write ``failed/<stem>.error.json`` (reason code, detail, time, the meta); return it."""
        path = self.failed / f"{stem}.error.json"
        record = {"id": stem, "reason": reason, "detail": detail,
                  "failed_at": utc_now().isoformat(), "meta": meta}
        write_new_file(path, (json.dumps(record, ensure_ascii=False, default=str) + "\n")
                       .encode())
        return path

    def move_failed(
        self, item: Item, reason: str, detail: str, meta: dict[str, Any] | None
    ) -> Path:
        """Quarantine ``item`` in ``failed/`` with its ``.error.json``; return the ``.eml`` path.

        Raises:
            FileNotFoundError: the claim was taken over.
        """
        stem = self._free_stem(self.failed, item.stem)
        self.write_error(stem, reason, detail, meta)
        os.rename(item.eml, self.failed / f"{stem}.eml")
        os.rename(item.meta, self.failed / f"{stem}.meta")
        return self.failed / f"{stem}.eml"

    def return_to_inbox(self, item: Item) -> None:
        """Give a claimed pair back to the inbox (``.eml`` first, the ready marker last)."""
        with contextlib.suppress(FileNotFoundError):
            os.rename(item.eml, self.inbox / item.eml.name)
        with contextlib.suppress(FileNotFoundError):
            os.rename(item.meta, self.inbox / item.meta.name)

    def _free_stem(self, folder: Path, stem: str) -> str:
        candidate = stem
        n = 0
        while os.path.lexists(folder / f"{candidate}.eml") or os.path.lexists(
            folder / f"{candidate}.meta"
        ):
            n += 1
            candidate = f"{stem}~{n}"
        return candidate

    def _rename(self, src: Path, dst: Path) -> None:
        if os.path.lexists(dst):
            raise SpoolError(f"refusing to overwrite {dst}")
        os.rename(src, dst)

    # --- requeue -------------------------------------------------------------------------

    def requeue(self, folder: Path) -> tuple[int, list[Problem]]:
        """Move every pair of ``folder`` (``failed/`` or ``unmatched/``) back into ``inbox/``.

        The ``.eml`` moves first, the ``.meta`` last; a pair's ``.error.json`` is removed.

        Returns:
            (pairs moved, problems: refused files, lone files, names taken in the inbox).
        """
        moved = 0
        problems: list[Problem] = []
        with os.scandir(folder) as entries:
            metas = [e for e in entries if e.name.endswith(".meta")]
        for entry in metas:
            stem = entry.name[: -len(".meta")]
            eml = folder / f"{stem}.eml"
            if not entry.is_file(follow_symlinks=False) or (
                os.path.lexists(eml) and not is_regular(eml)
            ):
                problems.append(Problem(entry.path, "symlink", "not a regular file: left alone"))
                continue
            if os.path.lexists(self.inbox / entry.name) or os.path.lexists(
                self.inbox / f"{stem}.eml"
            ):
                problems.append(Problem(entry.path, "name_taken", "the inbox has this name"))
                continue
            try:
                if is_regular(eml):
                    os.rename(eml, self.inbox / f"{stem}.eml")
                os.rename(entry.path, self.inbox / entry.name)
            except FileNotFoundError:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(folder / f"{stem}.error.json")
            moved += 1
        fsync_dir(self.inbox)
        return moved, problems

    # --- status --------------------------------------------------------------------------

    def status(self, *, now: float | None = None, limit: int = 100) -> SpoolStatus:
        """Return counts per folder, the oldest inbox file's age, and what needs attention.

        ``stale_claims``: claim folders whose owner is gone (the next pass returns them);
        ``stale_eml_without_meta``: inbox ``.eml`` files without ``.meta`` older than
        ``stale_eml_seconds`` (legacy files waiting for the grace period count too);
        ``refused``: symlinks and other non-regular files in the inbox. Lists are capped at
        ``limit`` entries.
        """
        now = time.time() if now is None else now
        ready = waiting = 0
        oldest: float | None = None
        stale: list[str] = []
        refused: list[str] = []
        metas: set[str] = set()
        emls: dict[str, float] = {}
        with os.scandir(self.inbox) as entries:
            for entry in entries:
                if not entry.name.endswith((".eml", ".meta")):
                    continue
                if not entry.is_file(follow_symlinks=False):
                    if len(refused) < limit:
                        refused.append(entry.name)
                    continue
                mtime = entry.stat(follow_symlinks=False).st_mtime
                oldest = mtime if oldest is None else min(oldest, mtime)
                if entry.name.endswith(".meta"):
                    metas.add(entry.name[:-5])
                else:
                    emls[entry.name[:-4]] = mtime
        for stem, mtime in emls.items():
            if stem in metas:
                ready += 1
            else:
                waiting += 1
                if now - mtime > self.stale_eml_seconds and len(stale) < limit:
                    stale.append(f"{stem}.eml")
        processed = 0
        with os.scandir(self.processed) as days:
            for day in days:
                if day.is_dir(follow_symlinks=False):
                    processed += _count_suffix(Path(day.path), ".meta")
        claims = 0
        with os.scandir(self.claims) as entries:
            claims = sum(1 for e in entries if e.is_dir(follow_symlinks=False))
        return SpoolStatus(
            inbox_ready=ready,
            inbox_waiting=waiting,
            processed=processed,
            failed=_count_suffix(self.failed, ".meta"),
            unmatched=_count_suffix(self.unmatched, ".meta"),
            claims=claims,
            oldest_inbox_age_seconds=None if oldest is None else max(0.0, now - oldest),
            stale_claims=[p.name for p in self.stale_claims()][:limit],
            stale_eml_without_meta=sorted(stale),
            refused=sorted(refused),
        )


def _count_suffix(folder: Path, suffix: str) -> int:
    with os.scandir(folder) as entries:
        return sum(1 for e in entries if e.name.endswith(suffix))


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(read_nofollow(path, 1 << 20))
    except (OSError, ValueError, SpoolError, FileTooLarge):
        return None
    return data if isinstance(data, dict) else None


def processed_day(meta: dict[str, Any] | None) -> str:
    """Return ``YYYY-MM-DD``: the UTC day of the meta's ``received_at`` (today if unusable)."""
    value = meta.get("received_at") if isinstance(meta, dict) else None
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return when.astimezone(UTC).strftime("%Y-%m-%d")
        except ValueError:
            pass
    return utc_now().strftime("%Y-%m-%d")


def load_meta(path: Path) -> dict[str, Any]:
    """Return the parsed ``.meta`` JSON object of a claimed pair.

    Raises:
        ValueError: it is not a JSON object (or is larger than 1 MiB).
        SpoolError / OSError: it cannot be read.
    """
    try:
        data = json.loads(read_nofollow(path, 1 << 20))
    except FileTooLarge:
        raise ValueError("the .meta is larger than 1 MiB") from None
    if not isinstance(data, dict):
        raise ValueError("the .meta is not a JSON object")
    return data
