"""The ``.meta`` sidecar of a spooled message, as a typed record read and written in one place.

Haraka's plugin (``haraka/plugins/mail_pipeline_spool.js``), :mod:`.writer` and the legacy-file
synthesis write it as one line of JSON: ``id, mail_from, rcpt_to, received_at, size,
remote_ip, helo, haraka_uuid`` (plus ``"legacy": true`` for a synthesised one). The ``.meta``
is also the ready marker of its pair (see :mod:`.layout`).

Validation checks what routing needs and nothing more: a ``.meta`` is a JSON object of at most
1 MiB whose ``rcpt_to`` is a list of strings (a legacy meta, routed by its headers, may lack
it); anything else is a :class:`MetaError`. The other fields are informative: a value of the
wrong type, or a ``received_at`` that is not an ISO 8601 time, reads as missing, so a cosmetic
slip never quarantines a message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mail_pipeline.errors import SpoolError
from mail_pipeline.intake.spool.files import FileTooLarge, read_nofollow, utc_now

#: A ``.meta`` larger than this is refused unread.
META_MAX_BYTES = 1 << 20


class MetaError(ValueError):
    """A ``.meta`` cannot be used: not JSON, not an object, too large, or no ``rcpt_to`` list."""


@dataclass(frozen=True)
class SpoolMeta:
    """The envelope of one spooled message, as its ``.meta`` records it.

    Attributes:
        id: the spool id (the pair's file stem; Haraka's UUID4).
        rcpt_to: the envelope recipients as written (Bcc included); empty for legacy files.
        received_at: when the message was accepted (aware), None if not recorded.
        mail_from: the envelope sender ("" for the null sender).
        size: the message size in bytes, as recorded.
        remote_ip, helo, haraka_uuid: where it came from (informative).
        legacy: a meta synthesised for a seed-era ``.eml`` (routed by its headers).
    """

    id: str
    rcpt_to: tuple[str, ...]
    received_at: datetime | None = None
    mail_from: str = ""
    size: int | None = None
    remote_ip: str | None = None
    helo: str | None = None
    haraka_uuid: str | None = None
    legacy: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, object], *, legacy: bool = False) -> SpoolMeta:
        """Return the record of a decoded ``.meta`` object; ``legacy`` forces a legacy meta.

        Raises:
            MetaError: a non-legacy meta without a ``rcpt_to`` list of strings.
        """
        is_legacy = legacy or bool(data.get("legacy"))
        rcpt = data.get("rcpt_to")
        if isinstance(rcpt, list) and all(isinstance(a, str) for a in rcpt):
            rcpt_to: tuple[str, ...] = tuple(rcpt)
        elif is_legacy:
            rcpt_to = ()
        else:
            raise MetaError("the .meta has no rcpt_to list of addresses")
        size = data.get("size")
        return cls(
            id=_text(data.get("id")) or "",
            rcpt_to=rcpt_to,
            received_at=parse_time(data.get("received_at")),
            mail_from=_text(data.get("mail_from")) or "",
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            remote_ip=_text(data.get("remote_ip")),
            helo=_text(data.get("helo")),
            haraka_uuid=_text(data.get("haraka_uuid")),
            legacy=is_legacy,
        )

    @classmethod
    def from_json(cls, data: bytes | str, *, legacy: bool = False) -> SpoolMeta:
        """Return the record of a ``.meta``'s JSON text.

        Raises:
            MetaError: not JSON, not a JSON object, or no ``rcpt_to`` (see :meth:`from_dict`).
        """
        try:
            value = json.loads(data)
        except ValueError as exc:
            raise MetaError(str(exc)) from None
        if not isinstance(value, dict):
            raise MetaError("the .meta is not a JSON object")
        return cls.from_dict(value, legacy=legacy)

    @classmethod
    def read(cls, path: Path, *, legacy: bool = False) -> SpoolMeta:
        """Return the record of the ``.meta`` file ``path`` (never following a symlink).

        Raises:
            MetaError: it is larger than 1 MiB or invalid (see :meth:`from_json`).
            SpoolError: it is a symlink or not a regular file.
            OSError: it cannot be read (FileNotFoundError: it is gone).
        """
        try:
            data = read_nofollow(path, META_MAX_BYTES)
        except FileTooLarge:
            raise MetaError("the .meta is larger than 1 MiB") from None
        return cls.from_json(data, legacy=legacy)

    @classmethod
    def read_or_none(cls, path: Path) -> SpoolMeta | None:
        """Return the record of ``path``, or None if it cannot be read or is invalid."""
        try:
            return cls.read(path)
        except (OSError, SpoolError, MetaError):
            return None

    @classmethod
    def for_legacy_file(cls, stem: str, received_at: datetime, size: int) -> SpoolMeta:
        """Return the meta synthesised for a seed-era ``.eml`` without one (see :mod:`.layout`)."""
        return cls(id=stem, rcpt_to=(), received_at=received_at, size=size, legacy=True)

    def to_dict(self) -> dict[str, object]:
        """Return the record as the JSON object a ``.meta`` holds."""
        data: dict[str, object] = {
            "id": self.id,
            "mail_from": self.mail_from,
            "rcpt_to": list(self.rcpt_to),
            "received_at": format_time(self.received_at) if self.received_at else None,
            "size": self.size,
            "remote_ip": self.remote_ip,
            "helo": self.helo,
            "haraka_uuid": self.haraka_uuid,
        }
        if self.legacy:
            data["legacy"] = True
        return data

    def to_json(self) -> bytes:
        """Return the ``.meta`` file's content: one line of JSON."""
        return (json.dumps(self.to_dict()) + "\n").encode()

    @property
    def processed_day(self) -> str:
        """``YYYY-MM-DD``: the UTC day of ``received_at`` (see :func:`processed_day`)."""
        return processed_day(self)


def processed_day(meta: SpoolMeta | None) -> str:
    """Return ``YYYY-MM-DD``: the UTC day of the meta's ``received_at`` (today if unknown)."""
    when = meta.received_at if meta is not None else None
    return (when or utc_now()).astimezone(UTC).strftime("%Y-%m-%d")


def parse_time(value: object) -> datetime | None:
    """Return the aware time of an ISO 8601 text (no zone: UTC), or None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def format_time(when: datetime) -> str:
    """Return ``when`` as ISO 8601 text, UTC written ``Z``."""
    return when.isoformat().replace("+00:00", "Z")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
