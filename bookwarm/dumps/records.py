"""The fields bookwarm needs from one dump row's JSON, whatever shape real rows give them.

Works name their authors as ``{"type": {"key": "/type/author_role"}, "author": {"key": …}}``, but
real rows also hold a bare-string ``type``, ``{"key": …}`` directly, a bare string, ``{}`` or
nothing (../shared/notes/providers.md, "Data dumps"): every shape gives the same OpenLibrary keys,
the unreadable ones none. A row whose JSON does not parse is counted by the caller and skipped.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bookwarm.parsing import isbn as isbnlib

_AUTHOR_KEY = re.compile(r"^(?:/authors/)?(OL\d+A)$")
_WORK_KEY = re.compile(r"^(?:/works/)?(OL\d+W)$")
_YEAR = re.compile(r"(?<!\d)(\d{4})(?!\d)")


def parse(text: str) -> dict[str, Any] | None:
    """The row's JSON object, or None when it is not one (malformed rows are skipped)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def author_key_of(entry: object) -> str | None:
    """``OL…A`` from one entry of a work's or edition's ``authors`` list, in any of its shapes."""
    if isinstance(entry, str):
        match = _AUTHOR_KEY.match(entry.strip())
        return match.group(1) if match else None
    if isinstance(entry, dict):
        inner = entry.get("author")
        if inner is not None:
            return author_key_of(inner)
        key = entry.get("key")
        return author_key_of(key) if isinstance(key, str) else None
    return None


def author_keys(record: dict[str, Any]) -> list[str]:
    """The record's author keys in its own order, each once."""
    entries = record.get("authors")
    if not isinstance(entries, list):
        return []
    return list(dict.fromkeys(k for k in (author_key_of(e) for e in entries) if k))


def work_keys(record: dict[str, Any]) -> list[str]:
    """``OL…W`` of an edition's works (``works: [{key}]``), each once."""
    entries = record.get("works")
    if not isinstance(entries, list):
        return []
    keys = []
    for entry in entries:
        raw = entry.get("key") if isinstance(entry, dict) else entry
        match = _WORK_KEY.match(raw.strip()) if isinstance(raw, str) else None
        if match:
            keys.append(match.group(1))
    return list(dict.fromkeys(keys))


def year(value: object) -> int | None:
    """The first four-digit year in a free-text date ("1990", "March 4, 1990", "c1990")."""
    match = _YEAR.search(value) if isinstance(value, str) else None
    return int(match.group(1)) if match else None


def cover(record: dict[str, Any]) -> int | None:
    """The first real cover id (real rows hold -1 for a removed cover)."""
    covers = record.get("covers")
    if not isinstance(covers, list):
        return None
    return next((c for c in covers if isinstance(c, int) and not isinstance(c, bool) and c > 0), None)


def text(record: dict[str, Any], field: str) -> str | None:
    value = record.get(field)
    if isinstance(value, dict):  # ``{"type": "/type/text", "value": …}``
        value = value.get("value")
    return value.strip() if isinstance(value, str) and value.strip() else None


def redirect_target(record: dict[str, Any]) -> str | None:
    """Where a ``/type/redirect`` row points (``location``), as a bare key."""
    location = record.get("location")
    if not isinstance(location, str):
        return None
    return location.rsplit("/", 1)[-1] or None


def final(key: str, moves: dict[str, str]) -> str:
    """A key after its redirects (a few hops at most; a loop stops where it started)."""
    seen = {key}
    while key in moves and moves[key] not in seen:
        key = moves[key]
        seen.add(key)
    return key


def isbn13s(raw: list[str]) -> list[str]:
    """Valid ISBNs as ISBN-13, each once, in order."""
    found = []
    for value in raw:
        isbn13, _ = isbnlib.normalise(value)
        if isbn13 and isbn13 not in found:
            found.append(isbn13)
    return found


def edition_isbns(record: dict[str, Any]) -> list[str]:
    """An edition's ISBNs (``isbn_13``, ``isbn_10`` and the legacy ``isbn``) as ISBN-13."""
    return isbn13s([v for field in ("isbn_13", "isbn_10", "isbn") for v in _strings(record.get(field))])


def languages(record: dict[str, Any]) -> list[str]:
    """An edition's language codes (``languages: [{key: "/languages/eng"}]``)."""
    entries = record.get("languages")
    if not isinstance(entries, list):
        return []
    return [
        e["key"].rsplit("/", 1)[-1] for e in entries if isinstance(e, dict) and isinstance(e.get("key"), str)
    ]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
