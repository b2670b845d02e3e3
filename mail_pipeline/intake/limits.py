"""Limits shared by every way mail comes in, defined once.

:data:`DEFAULT_MAX_MESSAGE_BYTES` is the default largest message, in bytes: Haraka refuses a
larger one at SMTP time (552), the spool ingest quarantines a larger file in ``failed/``, and
the IMAP fetcher leaves a larger message on the server and records its UID as ``too_large``
(an IMAP account may set its own ``max_message_bytes``).
"""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES"]

#: 25 MiB.
DEFAULT_MAX_MESSAGE_BYTES = 25 * 1024 * 1024
