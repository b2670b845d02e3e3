"""Parse raw e-mail bytes into the fields the pipeline stores (no Dagster imports).

The IMAP fetcher and the spool ingest both call :func:`parse_message` and hand the
:class:`ParsedMessage` to the save service. One module per job:

* :mod:`~mail_pipeline.mime.parse` — the entry point: is it a message, then assemble the result;
* :mod:`~mail_pipeline.mime.results` — :class:`ParsedMessage` and :class:`ParsedAttachment`;
* :mod:`~mail_pipeline.mime.header_block` — a part's header fields and where its body starts;
* :mod:`~mail_pipeline.mime.structure` — the MIME part tree (flanker, stdlib fallback);
* :mod:`~mail_pipeline.mime.flanker_adapter` — the only module that touches flanker;
* :mod:`~mail_pipeline.mime.headers` — RFC 2047 encoded words and RFC 2231 parameters;
* :mod:`~mail_pipeline.mime.charsets` — bytes to text with wrong labels worked around;
* :mod:`~mail_pipeline.mime.transfer` — base64 and quoted-printable, leniently, in chunks;
* :mod:`~mail_pipeline.mime.heap` — freed memory back to the system after a big message;
* :mod:`~mail_pipeline.mime.addresses` — From/To/Cc/Bcc address lists;
* :mod:`~mail_pipeline.mime.dates`, :mod:`~mail_pipeline.mime.message_id` — those two fields;
* :mod:`~mail_pipeline.mime.bodies` — leaves sorted into text, HTML and attachments;
* :mod:`~mail_pipeline.mime.content_hash` — the duplicate-detection hash;
* :mod:`~mail_pipeline.mime.html_text` — readable text of an HTML-only message.

How flanker is used, and where it is bypassed
---------------------------------------------
flanker (0.9.11) reads the MIME structure (its scanner finds the content types and
boundaries and builds the part tree) and parses the addresses that the fast path in
:mod:`~mail_pipeline.mime.addresses` does not. Around it:

* The raw bytes are handed to the scanner as a ``latin-1`` string (one character per byte).
  ``flanker.mime.from_string(bytes)`` instead decodes the whole message as UTF-8 and, when
  that fails (any 8-bit non-UTF-8 part), guesses one charset for the *whole message* with
  chardet: ≈10× slower and wrong for correctly labelled mail (``café`` → ``cafÚ``). With
  latin-1 every string offset is a byte offset, so each part's bytes are recovered exactly.
* flanker's tokenizer is replaced by a faster one giving the same tokens, and a message whose
  root is not ``multipart/*`` or ``message/*`` needs no scanner at all (see
  :mod:`~mail_pipeline.mime.flanker_adapter` for the private flanker names this needs).
* Header fields, parameters, encoded words, transfer encodings and charsets are decoded
  here, not by flanker: flanker decodes RFC 2231 values with the wrong charset, maps gb2312
  text to mojibake, and turns bad base64 into garbage silently.
* When the flanker scanner raises, the stdlib :mod:`email` parser reads the structure
  instead, and a note says so. Dates are parsed with :func:`email.utils.parsedate_to_datetime`.

Memory of a big message
-----------------------
A parse holds the raw bytes and at most one transient copy of them: only the header block is
decoded unless the root is ``multipart/*`` or ``message/*`` (then the latin-1 text for the
scanner, freed before the bodies are decoded, and never flanker's 4-bytes-per-character
``StringIO`` of it); parts are ``memoryview`` slices of the raw bytes; an attachment stays
encoded and is decoded a chunk at a time to be hashed (while parsing) and written (when
saved, :meth:`ParsedAttachment.chunks`); the content hash reads the body in chunks; a long
HTML body is converted in pieces. After a message of 4 MiB or more the freed heap pages go
back to the operating system (:mod:`~mail_pipeline.mime.heap`).
"""

from __future__ import annotations

from mail_pipeline.mime.content_hash import TRACE_HEADERS
from mail_pipeline.mime.html_text import html_to_text
from mail_pipeline.mime.parse import parse_message
from mail_pipeline.mime.results import ParsedAttachment, ParsedMessage
from mail_pipeline.mime.structure import MAX_DEPTH

__all__ = [
    "MAX_DEPTH",
    "TRACE_HEADERS",
    "ParsedAttachment",
    "ParsedMessage",
    "html_to_text",
    "parse_message",
]
