"""Read the header block of a message or MIME part: its fields and where its body starts.

Works on the latin-1 view of the raw bytes (one character per byte), so the returned body
offset is a byte offset and header values keep their raw 8-bit bytes for later decoding
(:mod:`mail_pipeline.mime.headers`). The line rule is flanker's, so the header block found
here is the one flanker's scanner assumed when it located the part.
"""

from __future__ import annotations

import re

__all__ = ["Fields", "read_header_block"]

#: Header fields in order: (lowercased name, unfolded and stripped value as latin-1 text).
Fields = list[tuple[str, str]]

# flanker's rule (headers/parsing.py) for a line that belongs to a header block, and a run
# of such lines (matched in one call: the header block of a part).
_HEADER_LINE = re.compile(r"From |[\x21-\x39\x3b-\x7e]+:|[\t ]")
_HEADER_RUN = re.compile(r"(?:(?:From |[\x21-\x39\x3b-\x7e]+:|[\t ])[^\n]*\n)*")


def read_header_block(s: str, pos: int, end: int) -> tuple[Fields, int]:
    """Read the header fields of the part that starts at ``s[pos]`` and ends before ``end``.

    Returns the fields as (lowercased name, unfolded and stripped value) in order, and the
    offset of the body. The block ends at an empty line (which is skipped), at a line that is
    no header line (flanker's rule: that line is the first body line) or at ``end``. An mbox
    ``From `` line is skipped; continuation lines before the first field are ignored. Never
    raises.
    """
    run_end = _HEADER_RUN.match(s, pos, end).end()  # type: ignore[union-attr]  # matches ""
    if run_end >= end:
        body_start = end
    elif s.startswith("\n", run_end) or s.startswith("\r\n", run_end):
        body_start = s.index("\n", run_end) + 1
    elif s.find("\n", run_end, end) < 0 and _HEADER_LINE.match(s, run_end, end):
        run_end = body_start = end  # the last header line of a truncated message
    else:
        body_start = run_end
    fields: Fields = []
    name = ""
    value: list[str] = []
    for line in s[pos:run_end].split("\n"):
        if not line:
            continue
        if line[0] in " \t":
            if name:
                value.append(line.rstrip("\r"))
            continue
        if name:
            fields.append((name, "".join(value).strip()))
        if line.startswith("From "):
            name = ""  # an mbox From_ line, not a field
            continue
        head, _, rest = line.rstrip("\r").partition(":")
        name = head.strip().lower()
        value = [rest]
    if name:
        fields.append((name, "".join(value).strip()))
    return fields, body_start
