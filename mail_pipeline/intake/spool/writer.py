"""Put a message into the spool exactly as the Haraka plugin does (for imports and the demo).

``tmp/<id>.eml.tmp`` → fsync → rename ``inbox/<id>.eml``; then ``tmp/<id>.meta.tmp`` → fsync →
rename ``inbox/<id>.meta`` (the ready marker, last); then fsync ``inbox/``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from mail_pipeline.errors import SpoolError
from mail_pipeline.intake.spool.meta import SpoolMeta


def _write_durably(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def spool_message(
    spool_dir: str | os.PathLike[str],
    raw: bytes,
    rcpt_to: Sequence[str],
    *,
    mail_from: str = "",
    received_at: datetime | None = None,
) -> str:
    """Write ``raw`` for the envelope recipients ``rcpt_to`` into the spool; return its id.

    Raises:
        ValueError: no recipients, or an empty message.
        SpoolError: the spool cannot be written (nothing is left behind in ``inbox/``).
    """
    if not rcpt_to:
        raise ValueError("a spooled message needs at least one envelope recipient")
    if not raw:
        raise ValueError("an empty message cannot be spooled")
    root = Path(spool_dir)
    sid = str(uuid.uuid4())
    when = (received_at or datetime.now(UTC)).astimezone(UTC)
    meta = SpoolMeta(
        id=sid,
        rcpt_to=tuple(rcpt_to),
        received_at=when,
        mail_from=mail_from,
        size=len(raw),
        remote_ip="127.0.0.1",
        helo="mail-pipeline",
        haraka_uuid="",
    )
    done: list[Path] = []
    try:
        for sub in ("inbox", "tmp", "processed", "failed", "unmatched"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for suffix, data in ((".eml", raw), (".meta", meta.to_json())):
            tmp = root / "tmp" / f"{sid}{suffix}.tmp"
            _write_durably(tmp, data)
            final = root / "inbox" / f"{sid}{suffix}"
            os.rename(tmp, final)
            done.append(final)
        fd = os.open(root / "inbox", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        for path in (*done, root / "tmp" / f"{sid}.eml.tmp", root / "tmp" / f"{sid}.meta.tmp"):
            with contextlib.suppress(OSError):  # e.g. the root is not a directory at all
                path.unlink(missing_ok=True)
        raise SpoolError(f"cannot write to the spool {root}: {exc}") from exc
    return sid
