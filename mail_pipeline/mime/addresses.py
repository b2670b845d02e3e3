"""Parse address-list header fields (From, To, Cc, Bcc) into normalised addresses.

Lists are split here (quotes, comments, angle brackets and ``group: ...;`` respected) and each
entry is parsed alone, so one bad entry drops only itself, with a note; the stdlib's
``email.utils.getaddresses`` is not used because, depending on the Python patch release, it
either rejects the whole list for one bad entry (``strict=True``, the default since the
CVE-2023-27043 fix) or silently turns bad entries into garbage pairs. Plain
``local@domain.tld`` and ``"Name" <local@domain.tld>`` entries take a fast path (a strict
regular expression) instead of flanker's grammar (≈35–90 µs per address). An entry that
flanker rejects is tried with :func:`email.utils.parseaddr`. Domains are lowercased; display
names have RFC 2047 words and raw 8-bit text decoded.
"""

from __future__ import annotations

import email.utils
import re

from mail_pipeline.mime.charsets import decode_text
from mail_pipeline.mime.flanker_adapter import parse_addr_spec
from mail_pipeline.mime.headers import decode_words

__all__ = ["address_list"]

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_SIMPLE_ADDR = rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+"
_FAST_BARE = re.compile(rf"<?({_SIMPLE_ADDR})>?")
_FAST_NAMED = re.compile(rf'(?:"((?:[^"\\]|\\.)*)"|([^"<>,;:@()\\]*?))\s*<({_SIMPLE_ADDR})>')


def _split_addresses(value: str) -> list[str]:
    """Return the entries of an address-list value, split at top-level commas; group names and
    ``;`` are dropped."""
    if not any(ch in value for ch in '"(:;\\'):
        # No quoting, comments or groups: commas separate entries (fast path).
        return [entry.strip() for entry in value.split(",") if entry.strip()]
    entries: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    angle = 0
    comment = 0
    for ch in value:
        if escaped:
            escaped = False
            current.append(ch)
            continue
        if ch == "\\" and (quoted or comment):
            escaped = True
            current.append(ch)
            continue
        if quoted:
            if ch == '"':
                quoted = False
            current.append(ch)
            continue
        if ch == "(":
            comment += 1
        elif ch == ")" and comment:
            comment -= 1
        elif comment:
            pass
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle += 1
        elif ch == ">" and angle:
            angle -= 1
        elif angle:
            pass
        elif ch in ",;":
            entries.append("".join(current))
            current = []
            continue
        elif ch == ":":
            current = []  # "group-name:" starts a group; the name is no address
            continue
        current.append(ch)
    entries.append("".join(current))
    return [e.strip() for e in entries if e.strip()]


def _normalise_addr(addr: str) -> str:
    """Return ``addr`` with its domain lowercased (the local part is case-sensitive)."""
    local, at, domain = addr.rpartition("@")
    return f"{local}@{domain.lower()}" if at else addr


def _display_name(entry: str, hint: str | None, notes: list[str]) -> str:
    """Return the decoded display name of a ``name <addr>`` entry, "" for a bare address."""
    head = entry.split("<", 1)[0].strip() if "<" in entry else ""
    if head.startswith('"') and head.endswith('"') and len(head) >= 2:
        head = re.sub(r"\\(.)", r"\1", head[1:-1])
    return " ".join(decode_words(head, hint, "address", notes, raw=False).split())


def _parse_address(entry: str, hint: str | None, notes: list[str]) -> tuple[str, str] | None:
    """Return (addr-spec with lowercased domain, display name) of one entry, None if unusable."""
    fast = _FAST_BARE.fullmatch(entry)
    if fast:
        return _normalise_addr(fast.group(1)), ""
    fast = _FAST_NAMED.fullmatch(entry)
    if fast and "=?" not in entry:
        name = fast.group(1)
        name = re.sub(r"\\(.)", r"\1", name) if name is not None else (fast.group(2) or "")
        return _normalise_addr(fast.group(3)), " ".join(name.split())
    addr_spec = parse_addr_spec(entry)
    if addr_spec is not None:
        return _normalise_addr(addr_spec), _display_name(entry, hint, notes)
    # flanker cannot cope (e.g. a dotless domain with odd quoting): try the stdlib, accept
    # only something that looks like local@domain.
    _name, addr = email.utils.parseaddr(entry)
    local, at, domain = addr.rpartition("@")
    if at and local and domain and "@" not in local and " " not in addr:
        return _normalise_addr(addr), _display_name(entry, hint, notes)
    return None


def address_list(
    values: list[str], field_name: str, hint: str | None, notes: list[str]
) -> list[tuple[str, str]]:
    """Return (addr-spec, display name) for every address in the header ``values`` of field
    ``field_name``, first occurrence only (compared case-insensitively), in order.

    Bad entries are dropped with a note; ``hint`` is the charset for raw 8-bit text. Never
    raises.
    """
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for value in values:
        text = value
        if not text.isascii():
            text = decode_text(text.encode("latin-1"), hint or "utf-8", field_name, notes)
        for entry in _split_addresses(text):
            parsed = _parse_address(entry, hint, notes)
            if parsed is None:
                notes.append(f"{field_name}: dropped unparseable address {entry[:200]!r}")
                continue
            if parsed[0].lower() not in seen:
                seen.add(parsed[0].lower())
                found.append(parsed)
    return found
