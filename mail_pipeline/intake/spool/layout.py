"""The Haraka spool on disk: its folders and the :class:`Spool` that works on them.

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

Where each rule lives
---------------------
:mod:`.meta` the ``.meta`` record; :mod:`.inbox` claiming from the inbox; :mod:`.claims` claim
folders, their owners and recovery; :mod:`.moves` moves out of a claim and requeueing;
:mod:`.status` the snapshot; :mod:`.files` the safe file operations. :class:`Spool` holds the
paths and settings and offers those operations as methods.

Safety
------
Nothing in the spool is followed: entries are examined with ``lstat``/``DirEntry`` without
following links and files are opened with ``O_NOFOLLOW``. A symlink or other non-regular
``.eml``/``.meta`` is **refused**: left where it is, counted and reported, never read or
moved (its target is never touched). A move never overwrites.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from mail_pipeline.errors import SpoolError
from mail_pipeline.intake.spool import claims, inbox, moves
from mail_pipeline.intake.spool.meta import SpoolMeta
from mail_pipeline.intake.spool.records import ClaimStats, Item, Problem
from mail_pipeline.intake.spool.status import SpoolStatus, spool_status

SUBDIRS = ("inbox", "processed", "failed", "unmatched", "tmp", "claims")

DEFAULT_LEASE_SECONDS = 15 * 60
DEFAULT_LEGACY_GRACE_SECONDS = 5 * 60
DEFAULT_STALE_EML_SECONDS = 60 * 60


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

    # --- claims (see mail_pipeline.intake.spool.claims and .inbox) -----------------------

    def new_claim(self) -> Path:
        """Create and return a claim folder of this process; see :func:`claims.new_claim`."""
        return claims.new_claim(self)

    def heartbeat(self, claim: Path) -> None:
        """Renew the lease of our claim folder (touch its mtime)."""
        claims.heartbeat(claim)

    def is_stale_claim(self, claim: Path, *, now: float | None = None) -> bool:
        """True when ``claim``'s owner is gone or its lease expired (see :mod:`.claims`)."""
        return claims.is_stale_claim(self, claim, now=now)

    def stale_claims(self, *, exclude: Path | None = None) -> list[Path]:
        """Return the claim folders whose owner is gone, except ``exclude``."""
        return claims.stale_claims(self, exclude=exclude)

    def recover_claim(self, claim: Path) -> tuple[int, list[Problem]]:
        """Return ``claim``'s files to the inbox; see :func:`claims.recover_claim`."""
        return claims.recover_claim(self, claim)

    def iter_claims(
        self, claim: Path, stats: ClaimStats, *, now: float | None = None
    ) -> Iterator[Item]:
        """Stream the inbox, claiming into ``claim``; see :func:`inbox.iter_claims`."""
        return inbox.iter_claims(self, claim, stats, now=now)

    # --- moves (see mail_pipeline.intake.spool.moves) ------------------------------------

    def move_pair(self, item: Item, folder: Path) -> Path:
        """Move ``item`` into ``folder``; see :func:`moves.move_pair`."""
        return moves.move_pair(item, folder)

    def processed_folder(self, meta: SpoolMeta | None) -> Path:
        """Return ``processed/<day>/`` for a meta (the UTC day of its ``received_at``)."""
        return moves.processed_folder(self, meta)

    def write_error(self, stem: str, reason: str, detail: str, meta: SpoolMeta | None) -> Path:
        """Write ``failed/<stem>.error.json``; see :func:`moves.write_error`."""
        return moves.write_error(self, stem, reason, detail, meta)

    def move_failed(self, item: Item, reason: str, detail: str, meta: SpoolMeta | None) -> Path:
        """Quarantine ``item`` in ``failed/``; see :func:`moves.move_failed`."""
        return moves.move_failed(self, item, reason, detail, meta)

    def return_to_inbox(self, item: Item) -> None:
        """Give a claimed pair back to the inbox (``.eml`` first, the ready marker last)."""
        moves.return_to_inbox(self, item)

    def requeue(self, folder: Path) -> tuple[int, list[Problem]]:
        """Move every pair of ``folder`` back into the inbox; see :func:`moves.requeue`."""
        return moves.requeue(self, folder)

    # --- status --------------------------------------------------------------------------

    def status(self, *, now: float | None = None, limit: int = 100) -> SpoolStatus:
        """Return a snapshot of the spool; see :func:`status.spool_status`."""
        return spool_status(self, now=now, limit=limit)
