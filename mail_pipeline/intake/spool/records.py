"""The small records the spool operations hand around: a claimed pair, a problem, scan stats."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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
