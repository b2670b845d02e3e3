"""Claim folders: who owns a claimed file, when a claim is stale, and giving it back.

Every ingest pass makes its own claim folder ``claims/<host>+<pid>+<start>+<random>/``
(``<start>`` is the process start time, see :func:`mail_pipeline.platform.process.process_start`,
so a recycled pid is not mistaken for the owner); :mod:`.inbox` claims pairs into it.

Recovery rule: a claim folder that is not our own is **stale**, and its files go back to
``inbox/``, when (a) it names this host and its process is gone (no such pid, or a pid with a
different start time), or (b) its lease expired: the folder's mtime, which its owner touches
at every batch and which every rename in or out of it refreshes, is older than
``lease_seconds`` (default 15 minutes; this is the only rule for owners on another host that
shares the spool). A live ingester's folder is never emptied under rule (a); should rule (b)
ever fire on a live but stuck ingester, nothing is lost or doubled: its later moves fail
with ``FileNotFoundError`` (reported), and the returned files are stored by the next pass,
where the store's dedup turns any already committed message into a duplicate.

Why a claim holds both files of a pair (four renames per pair: two in, two out), not only the
``.meta`` with the ``.eml`` left in ``inbox/`` until the final move (three): a claimed
``.eml`` left in the inbox looks like an ``.eml`` without meta to every other scan, so (1) a
non-UUID (legacy or requeued legacy) stem older than the grace period would be claimed a
second time as a legacy file by another ingester, and (2) should the lease rule (b) fire on a
live ingester, recovery would return the ``.meta`` while the old owner's final move still
found the ``.eml`` in the inbox and took it, leaving a ready marker without its message. With
both files inside, the claim folder alone says what a pass holds, and recovery is a plain
move back. The per-pair cost is cut elsewhere: the claim's only ``stat`` is the ``lstat`` of
the ``.eml`` (a regular file? its size bounds the batch), the final move's no-overwrite check
is the rename itself (``RENAME_NOREPLACE``, see :mod:`.files`), and recovery takes the file
types from its directory scan.

Returning a claim: ``.eml`` files go back first, then each ``.meta`` (the ready marker last).
A ``.meta`` whose ``.eml`` is already gone was caught between the two renames of a final
move (the ``.eml`` always moves first): it is put beside its ``.eml`` in ``failed/``,
``unmatched/`` or ``processed/<day>/``; if that ``.eml`` is nowhere the meta goes to
``failed/`` with reason ``missing_eml``. Temp files of a claim (``*.tmp``) are deleted.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mail_pipeline.errors import SpoolError
from mail_pipeline.intake.spool.files import fsync_dir, is_regular, rename_new
from mail_pipeline.intake.spool.meta import SpoolMeta, processed_day
from mail_pipeline.intake.spool.moves import write_error
from mail_pipeline.intake.spool.records import Problem
from mail_pipeline.platform.process import pid_alive, process_start

if TYPE_CHECKING:
    from mail_pipeline.intake.spool.layout import Spool

_HOST_SAFE = re.compile(r"[^A-Za-z0-9.-]+")


def hostname() -> str:
    """Return this host's name, made safe for a directory name."""
    return _HOST_SAFE.sub("-", socket.gethostname())[:64] or "host"


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

    def is_us(self) -> bool:
        """True when the owner is this very process (same host, pid and start time)."""
        return (
            self.host == hostname()
            and self.pid == os.getpid()
            and self.start == (process_start(self.pid) or "0")
        )

    def is_gone(self) -> bool:
        """True when the owner ran on this host and its process is no longer running.

        An owner on another host is never gone by this test (only its lease can expire).
        """
        if self.host != hostname() or self.is_us():
            return False
        return not pid_alive(self.pid, self.start if self.start != "0" else "")


def new_claim_id() -> str:
    """Return a fresh claim id for this process: ``<host>+<pid>+<start>+<random>``."""
    pid = os.getpid()
    start = process_start(pid) or "?"
    return f"{hostname()}+{pid}+{start if start != '?' else '0'}+{secrets.token_hex(4)}"


def new_claim(spool: Spool) -> Path:
    """Create and return a claim folder ``claims/<claim id>/`` for this process.

    Raises:
        SpoolError: it cannot be created.
    """
    for _ in range(5):
        path = spool.claims / new_claim_id()
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise SpoolError(f"cannot create a claim folder in {spool.claims}: {exc}") from None
        return path
    raise SpoolError("could not create a unique claim folder")


def heartbeat(claim: Path) -> None:
    """Renew the lease of our claim folder (touch its mtime); a failure is ignored."""
    with contextlib.suppress(OSError):
        os.utime(claim)


def is_stale_claim(spool: Spool, claim: Path, *, now: float | None = None) -> bool:
    """True when ``claim``'s owner is gone or its lease expired (see the module docstring)."""
    try:
        st = os.lstat(claim)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    now = time.time() if now is None else now
    if now - st.st_mtime > spool.lease_seconds:
        return True
    owner = ClaimOwner.parse(claim.name)
    return owner is not None and owner.is_gone()


def stale_claims(spool: Spool, *, exclude: Path | None = None) -> list[Path]:
    """Return the claim folders whose owner is gone, sorted, except ``exclude``."""
    out = []
    with os.scandir(spool.claims) as entries:
        for entry in entries:
            path = Path(entry.path)
            if path == exclude or not entry.is_dir(follow_symlinks=False):
                continue
            if is_stale_claim(spool, path):
                out.append(path)
    return sorted(out)


def recover_claim(spool: Spool, claim: Path) -> tuple[int, list[Problem]]:
    """Return the files of ``claim`` to ``inbox/`` and remove the folder.

    Returns:
        (pairs returned to the inbox, problems: files that had to go elsewhere or stay).
    """
    problems: list[Problem] = []
    returned = 0
    try:
        with os.scandir(claim) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except FileNotFoundError:
        return 0, problems
    names = [entry.name for entry in entries]
    regular = {entry.name for entry in entries if entry.is_file(follow_symlinks=False)}
    for name in names:  # temp files first: a half-written synthesised meta
        if name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.unlink(claim / name)
    inbox = os.fspath(spool.inbox)
    back: set[str] = set()  # .eml names this recovery put into the inbox
    for name in names:
        if name.endswith(".eml") and name in regular:
            with contextlib.suppress(FileNotFoundError):
                rename_new(claim / name, f"{inbox}/{name}")
                back.add(name)
    for name in names:
        if not name.endswith(".meta") or name not in regular:
            continue
        stem = name[: -len(".meta")]
        meta = claim / name
        if f"{stem}.eml" in back or is_regular(spool.inbox / f"{stem}.eml"):
            with contextlib.suppress(FileNotFoundError):
                rename_new(meta, spool.inbox / name)
                returned += 1
            continue
        home = _find_eml_home(spool, stem, meta)
        with contextlib.suppress(FileNotFoundError):
            if home is not None:
                rename_new(meta, home / name)
                problems.append(
                    Problem(
                        str(home / name), "meta_rejoined", "the .eml had already been moved here"
                    )
                )
            else:
                write_error(
                    spool,
                    stem,
                    "missing_eml",
                    "the .meta has no .eml",
                    SpoolMeta.read_or_none(meta),
                )
                rename_new(meta, spool.failed / name)
                problems.append(
                    Problem(str(spool.failed / name), "missing_eml", "the .meta has no .eml")
                )
    try:
        claim.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        leftover = ", ".join(sorted(os.listdir(claim))[:5])
        problems.append(
            Problem(str(claim), "claim_not_empty", f"unexpected files left: {leftover}")
        )
    fsync_dir(spool.inbox)
    return returned, problems


def _find_eml_home(spool: Spool, stem: str, meta: Path) -> Path | None:
    """Return the folder holding ``stem``'s lone ``.eml`` after a half-done move, or None."""
    day = processed_day(SpoolMeta.read_or_none(meta))
    for folder in (spool.failed, spool.unmatched, spool.processed / day):
        if is_regular(folder / f"{stem}.eml") and not (folder / f"{stem}.meta").exists():
            return folder
    return None
