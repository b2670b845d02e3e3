"""Make text fit the store's columns, in one place, from the models themselves.

Mail is full of text the database refuses: a NUL in an attachment name (``filename*=UTF-8''
a%00b.txt``, ``=?utf-8?Q?a=00b?=``, a raw NUL in a part header or a Content-ID) makes psycopg2
raise ``ValueError: A string literal cannot contain NUL`` (PostgreSQL text cannot hold it), and
a value longer than its ``String(n)`` column makes PostgreSQL refuse the row. Every row built
from a message goes through :func:`clean_row` on its way in, so no field-by-field caps are
needed elsewhere: NUL is removed from every string (and from strings inside JSON values), and
strings are cut to their column's length. The raw message bytes keep the original.

The lengths come from the models (:mod:`mail_pipeline.storage.store.models`); use
:func:`text_limits` or :func:`column_length` rather than repeating a number.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import JSON, String, Table

from mail_pipeline.storage.store.models import Base


@functools.cache
def text_limits(model: type[Base]) -> Mapping[str, int]:
    """Return ``{column key: maximum length}`` of every ``String(n)`` column of ``model``.

    Columns without a length (``Text``, ``String()``) are not in the mapping.
    """
    table = cast(Table, model.__table__)
    return {
        column.key: column.type.length
        for column in table.columns
        if isinstance(column.type, String) and column.type.length
    }


def column_length(model: type[Base], key: str) -> int | None:
    """Return the maximum length of column ``key`` of ``model``, or None when unbounded.

    Raises:
        KeyError: ``model`` has no column ``key``.
    """
    table = cast(Table, model.__table__)
    if key not in table.columns:
        raise KeyError(f"{table.name} has no column {key!r}")
    return text_limits(model).get(key)


def clean_text(value: str, limit: int | None = None) -> str:
    """Return ``value`` without NUL characters, cut to ``limit`` characters when given."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if limit is not None and len(value) > limit:
        value = value[:limit]
    return value


def clean_json(value: Any) -> Any:
    """Return ``value`` with NUL removed from every string in it (lists and dicts, nested)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list | tuple):
        return [clean_json(item) for item in value]
    if isinstance(value, dict):
        return {clean_json(k): clean_json(v) for k, v in value.items()}
    return value


def clean_row(model: type[Base], values: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``values`` (column key -> value) that ``model``'s table accepts as text.

    Every ``str`` loses its NUL characters and is cut to its column's length; in a ``JSON``
    column every string inside the value loses its NUL characters. Other values, and keys that
    are not columns of ``model``, are passed through unchanged.
    """
    limits = text_limits(model)
    json_keys = _json_keys(model)
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, str):
            out[key] = clean_text(value, limits.get(key))
        elif key in json_keys:
            out[key] = clean_json(value)
        else:
            out[key] = value
    return out


@functools.cache
def _json_keys(model: type[Base]) -> frozenset[str]:
    """Return the keys of the ``JSON`` columns of ``model``."""
    table = cast(Table, model.__table__)
    return frozenset(column.key for column in table.columns if isinstance(column.type, JSON))
