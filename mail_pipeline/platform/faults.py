"""Fault-injection points: where a test may stop or break a running pass, injected, never read.

The core services that must survive a crash at any moment (the spool ingest, the IMAP fetch)
take a ``checkpoint`` callable and call it with a point's name at the moments a crash matters
most (after a claim, in the middle of a batch, after a commit ...). In production it is
:func:`no_checkpoint`, which does nothing; a crash test injects one that, for example, writes a
marker and waits to be SIGKILLed there. Nothing here reads the environment.
"""

from __future__ import annotations

from collections.abc import Callable

#: Called with the name of the point the service has just reached.
Checkpoint = Callable[[str], None]


def no_checkpoint(point: str) -> None:
    """The production checkpoint: does nothing."""
    del point
