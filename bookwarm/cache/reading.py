"""The read path every reader takes, `bookwarm lookup` and the HTTP API alike: a name or an ISBN to
what the two tiers hold, a miss or a stale hit recorded as demand (``TieredCache.lookup_*``). One
path, so the CLI and the API answer, promote and record demand the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bookwarm.cache.tiered import Read, TieredCache
from bookwarm.parsing.names import author_key, tidy


@dataclass(frozen=True)
class AuthorRead:
    name: str  # as asked, tidied
    key: str  # its author key (bookwarm.keys)
    read: Read


@dataclass(frozen=True)
class IsbnRead:
    isbn: str
    entry: dict[str, Any] | None  # {isbn13, author: {name, key}, work}, None on a miss
    tier: str  # the entry's tier
    author: Read | None  # its author's bibliography: how old and how stale the answer is


async def read_author(cache: TieredCache, name: str) -> AuthorRead:
    tidied = tidy(name)
    key = author_key(tidied)
    return AuthorRead(tidied, key, await cache.lookup_author(key, tidied))


async def read_isbn(cache: TieredCache, isbn: str) -> IsbnRead:
    """``isbn``: digits (ISBN-10 or -13), hyphens removed by the caller."""
    found = await cache.lookup_isbn(isbn)
    if found.value is None:
        return IsbnRead(isbn, None, found.tier, None)
    author = found.value["author"]
    return IsbnRead(isbn, found.value, found.tier, await cache.lookup_author(author["key"], author["name"]))
