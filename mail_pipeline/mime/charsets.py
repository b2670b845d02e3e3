"""Decode text bytes labelled with a MIME charset, working around wrong and missing labels.

:func:`decode_text` is the one place where bytes become text for bodies, header values and
parameters. It never raises: a label that does not fit is replaced by UTF-8, by the label's
superset (gb2312/gbk → gb18030, shift_jis → cp932, iso-8859-1 → windows-1252, ...) or by a
chardet guess of these bytes, each with a note.
"""

from __future__ import annotations

import codecs
import re

import chardet

__all__ = ["decode_text"]

_CHARDET_SAMPLE = 64 * 1024

# Decoders that are supersets of a commonly mislabelled charset (Python codec names).
_SUPERSET = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "iso8859-1": "cp1252",
    "ascii": "cp1252",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "big5": "big5hkscs",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "euc_jp": "euc_jis_2004",
}
_ALIASES = {"x-sjis": "shift_jis", "ks_c_5601-1987": "euc_kr", "x-gbk": "gbk", "cp-850": "cp850"}
# Single-byte codecs decode any byte sequence "cleanly", so a UTF-8 body mislabelled with one
# of them is only recognisable by being valid UTF-8.
_SINGLE_BYTE = re.compile(r"^(iso8859-\d+|cp12\d\d|cp8\d\d|koi8.*|mac-.*|latin.*|tis-620|cp874)$")
_NOT_ASCII_COMPATIBLE = re.compile(r"^(utf[-_]?16.*|utf[-_]?32.*|utf[-_]?7|iso2022.*|hz)$")


def _codec(label: str | None) -> str | None:
    """Return Python's canonical codec name for a MIME charset label, or None if unknown."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except (LookupError, ValueError):
        return None


def decode_text(data: bytes, label: str | None, where: str, notes: list[str]) -> str:
    """Return the text of ``data``, labelled with charset ``label``; never raises.

    Order: the declared charset if it decodes cleanly (a single-byte label on valid non-ASCII
    UTF-8 counts as wrong; iso-8859-1 is read as its superset windows-1252), UTF-8, the
    declared charset's superset, then a chardet guess of these bytes with replacement
    characters. Every fallback appends a note naming ``where`` to ``notes``.
    """
    codec = _codec(label)
    if data.isascii() and (codec is None or not _NOT_ASCII_COMPATIBLE.match(codec)):
        return data.decode("ascii")
    if label and codec is None:
        notes.append(f"{where}: unknown charset {label!r}")
    if codec is not None and codec not in ("utf-8", "ascii"):
        if _SINGLE_BYTE.match(codec):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                notes.append(f"{where}: declared charset {label} wrong, decoded as utf-8")
                return text
            if codec == "iso8859-1":
                try:
                    return data.decode("cp1252")  # same text, plus the C1 range's punctuation
                except UnicodeDecodeError:
                    return data.decode("iso8859-1")
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if codec not in (None, "utf-8", "ascii"):
            notes.append(f"{where}: declared charset {label} wrong, decoded as utf-8")
        return text
    superset = _SUPERSET.get(codec) if codec is not None else None
    if superset is not None:
        try:
            text = data.decode(superset)
        except UnicodeDecodeError:
            pass
        else:
            notes.append(f"{where}: declared charset {label} wrong, decoded as {superset}")
            return text
    guess = _guess_codec(data)
    notes.append(
        f"{where}: charset {label or '(none)'} does not fit, decoded as {guess} "
        "with replacement characters"
    )
    return data.decode(guess, errors="replace")


# Charsets real mail uses; chardet's other answers (cp737, mac-cyrillic, ...) on short samples
# are noise, and windows-1252 is the better default then.
_PLAUSIBLE = re.compile(
    r"^(utf-8|cp125\d|iso8859-\d+|koi8_[ru]|gb18030|gbk|gb2312|big5|big5hkscs|shift_jis|cp932"
    r"|euc_jp|euc_kr|cp949|cp874|tis-620)$"
)


def _guess_codec(data: bytes) -> str:
    """Return a codec for bytes whose label did not fit: chardet's guess of (a sample of)
    ``data`` when it is a charset mail plausibly uses and decodes the sample cleanly, else
    windows-1252 (the most common unlabelled 8-bit charset)."""
    sample = data[:_CHARDET_SAMPLE]
    try:
        name = _codec(chardet.detect(sample).get("encoding"))
    except Exception:  # chardet is a heuristic; any failure just means "no guess"
        name = None
    if name is None or not _PLAUSIBLE.match(name):
        return "cp1252"
    name = _SUPERSET.get(name, name) if name != "iso8859-1" else "cp1252"
    try:
        sample.decode(name)
    except UnicodeDecodeError as error:
        if error.start < len(sample) - 4:  # not just a character cut off by the sample end
            return "cp1252"
    return name
