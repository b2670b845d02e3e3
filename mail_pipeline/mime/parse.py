"""Turn the raw bytes of one e-mail into a :class:`~mail_pipeline.mime.results.ParsedMessage`.

The entry point of the package: :func:`parse_message` decides whether the bytes are a message
at all, then has the other modules read the structure, decode the fields and bodies and hash
the content.

What is a message and what is not
---------------------------------
Intake is lossless, so a damaged message yields a result with ``notes`` rather than a
rejection. :func:`parse_message` raises :class:`~mail_pipeline.errors.MessageParseError` only when
the bytes are not a message at all:

* ``empty`` — no bytes, or only white space;
* ``not_a_message`` — there is no header block: after an optional mbox ``From `` line the
  input does not start with header fields, the header block holds a NUL byte (binary data),
  or none of its fields is a header a real message has (``From``, ``To``, ``Subject``,
  ``Date``, ``Message-ID``, ``Received``, ``MIME-Version``, ``Content-Type``, ... — see
  ``_MESSAGE_FIELDS``);
* ``malformed_mime`` — the structure could not be read by flanker nor by the stdlib
  fallback (in practice: pathological nesting that exhausts the recursion limit);
* ``too_large`` (:class:`~mail_pipeline.errors.MessageTooLargeError`) — larger than ``max_size``.

Everything else parses: a truncated message gives its headers and whatever body there is,
a multipart without boundary gives its body as text, bad base64 is decoded leniently, a wrong
charset label is worked around — each with a note. No other exception escapes, and the work
is linear in the input size (no backtracking regular expressions over the body, nesting is
capped at :data:`~mail_pipeline.mime.structure.MAX_DEPTH` levels).
"""

from __future__ import annotations

from mail_pipeline.errors import MessageParseError, MessageTooLargeError
from mail_pipeline.mime.addresses import address_list
from mail_pipeline.mime.bodies import Bodies, collect, first_charset
from mail_pipeline.mime.content_hash import content_hash
from mail_pipeline.mime.dates import parse_date
from mail_pipeline.mime.header_block import Fields, read_header_block
from mail_pipeline.mime.headers import decode_words
from mail_pipeline.mime.heap import map_big_allocations, release_free_memory
from mail_pipeline.mime.html_text import html_to_text
from mail_pipeline.mime.message_id import message_id
from mail_pipeline.mime.results import ParsedMessage
from mail_pipeline.mime.structure import needs_scan, read_structure

__all__ = ["parse_message"]

#: After parsing a message of at least this many bytes, free heap pages are given back to the
#: operating system (:mod:`~mail_pipeline.mime.heap`).
RELEASE_ABOVE = 4 * 1024 * 1024

# A header block must hold at least one of these to be a message's header block.
_MESSAGE_FIELDS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "received",
        "return-path",
        "sender",
        "reply-to",
        "delivered-to",
        "x-original-to",
        "in-reply-to",
        "references",
        "resent-from",
        "resent-to",
        "resent-date",
        "resent-message-id",
        "resent-sender",
        "dkim-signature",
        "authentication-results",
        "arc-seal",
        "x-received",
        "x-mailer",
        "user-agent",
        "list-id",
        "thread-topic",
        "thread-index",
        "importance",
        "x-priority",
        "organization",
        "comments",
        "keywords",
        "x-uid",
        "status",
        "envelope-to",
        "x-envelope-from",
        "return-receipt-to",
    }
)


def parse_message(
    raw: bytes | bytearray | memoryview, *, max_size: int | None = None
) -> ParsedMessage:
    """Parse the raw bytes of one message (RFC 5322 / MIME) into a :class:`ParsedMessage`.

    Returns the parsed message; what was repaired or guessed is listed in its ``notes``.
    Raises :class:`MessageTooLargeError` when ``max_size`` is given and ``len(raw)`` exceeds it,
    and :class:`MessageParseError` (``reason`` ``empty``, ``not_a_message`` or
    ``malformed_mime``) for input that is not a usable message (see the module docstring).
    No other exception escapes, for any input.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise MessageParseError("not_a_message", f"expected bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    if len(raw) >= RELEASE_ABOVE:
        map_big_allocations()  # its transient copies are unmapped as soon as they are freed
    try:
        return _build(raw, max_size)
    except MessageParseError:
        raise
    except RecursionError as error:
        raise MessageParseError("malformed_mime", "structure nested too deeply") from error
    except Exception as error:  # a bug or a flanker fault: report it, do not crash the caller
        raise MessageParseError(
            "malformed_mime", f"unexpected {type(error).__name__}: {error}"
        ) from error
    finally:
        if len(raw) >= RELEASE_ABOVE:
            release_free_memory()  # the transient copies of a big message go back to the OS


def _build(raw: bytes, max_size: int | None) -> ParsedMessage:
    """Return the parsed message; raises as :func:`parse_message` says (and on bugs)."""
    if max_size is not None and len(raw) > max_size:
        raise MessageTooLargeError(len(raw), max_size)
    if not raw or raw.isspace():  # not raw.strip(): that copies the message
        raise MessageParseError("empty", "the message has no content")
    # One character per byte: string offsets are byte offsets. Only the header block is
    # decoded unless the structure must be scanned.
    s = _header_text(raw)
    notes: list[str] = []
    headers, body_start = read_header_block(s, 0, len(s))
    if not headers or not any(name in _MESSAGE_FIELDS for name, _ in headers):
        raise MessageParseError("not_a_message", "the input does not start with a header block")
    if "\x00" in s[:body_start]:
        raise MessageParseError("not_a_message", "the header block holds NUL bytes (binary data)")
    if len(s) < len(raw) and needs_scan(headers):
        s = raw.decode("latin-1")

    tree = read_structure(raw, s, headers, body_start, notes)
    del s  # the parts are views into raw: the latin-1 copy can go before the bodies are decoded
    hint = first_charset(tree)
    fields = _Fields(headers, notes)

    subject_value = fields.first("subject")
    subject = decode_words(subject_value, hint, "subject", notes) if subject_value else ""
    subject = subject.replace("\t", " ").strip()

    from_value = fields.first("from")
    senders = address_list([from_value], "from", hint, notes) if from_value else []
    sender, sender_name = senders[0] if senders else ("", "")

    to = tuple(a for a, _ in address_list(fields.all("to"), "to", hint, notes))
    cc = tuple(a for a, _ in address_list(fields.all("cc"), "cc", hint, notes))
    bcc = tuple(a for a, _ in address_list(fields.all("bcc"), "bcc", hint, notes))
    date = parse_date(fields.first("date"), notes)
    msg_id = message_id(fields.first("message-id"))

    bodies = Bodies()
    collect(tree, hint, bodies, notes)
    html = "\n".join(bodies.html)
    if not bodies.text and len(html) >= RELEASE_ABOVE:
        release_free_memory()  # what decoding the bodies freed, before the text is derived
    text = "\n".join(bodies.text) if bodies.text else (html_to_text(html) if html else "")

    return ParsedMessage(
        message_id=msg_id,
        subject=subject,
        sender=sender,
        sender_name=sender_name,
        to=to,
        cc=cc,
        bcc=bcc,
        date=date,
        text=text,
        html=html,
        attachments=tuple(bodies.attachments),
        content_hash=content_hash(raw, body_start),
        size=len(raw),
        raw=raw,
        notes=tuple(dict.fromkeys(notes)),
    )


def _header_text(raw: bytes) -> str:
    """Return the latin-1 text of ``raw`` up to and including its first empty line (all of it
    when it has none): the top-level header block read there is the one the whole text gives,
    since that block ends at an empty line at the latest."""
    crlf = raw.find(b"\n\r\n")
    lf = raw.find(b"\n\n", 0, crlf + 2 if crlf >= 0 else len(raw))  # only an earlier one
    if lf >= 0:
        end = lf + 2
    elif crlf >= 0:
        end = crlf + 3
    else:
        return raw.decode("latin-1")
    return raw[:end].decode("latin-1")


class _Fields:
    """The top-level header fields, looked up by name."""

    def __init__(self, headers: Fields, notes: list[str]) -> None:
        self._headers = headers
        self._notes = notes

    def all(self, name: str) -> list[str]:
        """Return the values of every field ``name`` (lowercase), in order."""
        return [v for k, v in self._headers if k == name]

    def first(self, name: str) -> str | None:
        """Return the first value of field ``name``, None if absent; notes duplicates."""
        found = self.all(name)
        if len(found) > 1:
            self._notes.append(f"{name}: {len(found)} headers, the first one used")
        return found[0] if found else None
