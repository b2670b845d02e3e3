"""What goes into the save service and what comes out: deliveries, their keys and outcomes.

A :class:`Delivery` is one parsed message for one user; its dedup key (:func:`dedup_key`) is
what makes it unique for that user. ``EmailSaveService.save_batch``
(:mod:`mail_pipeline.storage.save_service`) answers one :class:`DeliveryResult` per delivery
(SAVED, DUPLICATE or FAILED with its reason), gathered in a :class:`BatchResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from mail_pipeline.mime import ParsedMessage
from mail_pipeline.storage.store import EmailSource


def dedup_key(parsed: ParsedMessage) -> str:
    """Return the key that makes a message unique for one user.

    ``mid:<Message-ID>`` when the message has a usable Message-ID, else
    ``sha256:<content hash>`` (the parser's hash ignores trace headers, so the same message
    fetched twice, or by IMAP and by SMTP, hashes the same).
    """
    if parsed.message_id:
        return f"mid:{parsed.message_id}"
    return f"sha256:{parsed.content_hash}"


@dataclass(frozen=True)
class Delivery:
    """One parsed message to store for one user."""

    user_id: int
    parsed: ParsedMessage
    source: EmailSource
    origin: str = ""
    received_at: datetime | None = None

    @property
    def key(self) -> tuple[int, str]:
        """(user id, dedup key)."""
        return (self.user_id, dedup_key(self.parsed))


class Outcome(StrEnum):
    """What happened to one delivery."""

    SAVED = "saved"
    DUPLICATE = "duplicate"
    FAILED = "failed"


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one delivery; ``message_pk`` is the new row id when saved."""

    outcome: Outcome
    message_pk: int | None = None
    error: str = ""


@dataclass(frozen=True)
class BatchResult:
    """The outcomes of a batch, in the order of its deliveries."""

    results: list[DeliveryResult] = field(default_factory=list)

    @property
    def saved(self) -> int:
        """How many deliveries were stored."""
        return sum(r.outcome is Outcome.SAVED for r in self.results)

    @property
    def duplicates(self) -> int:
        """How many deliveries were already stored."""
        return sum(r.outcome is Outcome.DUPLICATE for r in self.results)

    @property
    def failed(self) -> int:
        """How many deliveries could not be stored."""
        return sum(r.outcome is Outcome.FAILED for r in self.results)
