"""Both tiers together: the write path of a warmed author and the read path of a lookup.

Writes go to Redis (hours) and the object store (weeks); reads try Redis, fall back to the object
store and promote a cold hit back into Redis. Both sides use ``bookwarm.keys``, so every author
a run warms is found by the lookup (a contract test holds this).
"""

from __future__ import annotations

import asyncio
from typing import Any

from bookwarm.cache.hot import HotCache
from bookwarm.cache.objectstore import ObjectStore
from bookwarm.keys import Keys
from bookwarm.parsing import isbn as isbnlib

COLD_ISBNS_PER_WORK = 5  # object-store PUTs cost ~20 ms each: the cold tier keeps the main editions


def isbn_entries(bibliography: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """ISBN-13 and ISBN-10 -> {isbn13, author_key, work}: small pointers, not whole bibliographies."""
    author = bibliography["author"]
    entries: dict[str, dict[str, Any]] = {}
    for work in bibliography["works"]:
        for isbn13 in work["isbn13"]:
            entry = {"isbn13": isbn13, "author": {"name": author["name"], "key": author["key"]}, "work": work}
            entries[isbn13] = entry
            isbn10 = isbnlib.isbn13_to_10(isbn13)
            if isbn10:
                entries[isbn10] = entry
    return entries


class TieredCache:
    def __init__(
        self, hot: HotCache, cold: ObjectStore, *, hot_ttl_s: int, cold_concurrency: int = 32
    ) -> None:
        self.hot = hot
        self.cold = cold
        self.keys: Keys = hot.keys
        self.hot_ttl_s = hot_ttl_s
        self._cold_gate = asyncio.Semaphore(cold_concurrency)

    async def write(self, bibliography: dict[str, Any]) -> int:
        """Write an author's bibliography to both tiers; return the number of works cached."""
        entries = isbn_entries(bibliography)
        await self.hot.write_bibliography(bibliography, entries, self.hot_ttl_s)
        cold = [(Keys.author_object(bibliography["author"]["key"]), bibliography)]
        for work in bibliography["works"]:
            for isbn13 in work["isbn13"][:COLD_ISBNS_PER_WORK]:
                cold.append((Keys.isbn_object(isbn13), entries[isbn13]))
        await asyncio.gather(*(self._put(key, value) for key, value in cold))
        return len(bibliography["works"])

    async def _put(self, key: str, value: Any) -> None:
        async with self._cold_gate:
            await self.cold.put_json(key, value)

    async def read_author(self, author_key: str) -> tuple[dict[str, Any] | None, str]:
        """(bibliography, tier) where tier is 'hot', 'cold' (then promoted) or 'miss'."""
        value = await self.hot.get_json(self.keys.author(author_key))
        if value is not None:
            return value, "hot"
        value = await self.cold.get_json(Keys.author_object(author_key))
        if value is None:
            return None, "miss"
        await self.hot.set_json(self.keys.author(author_key), value, self.hot_ttl_s)
        return value, "cold"

    async def read_isbn(self, isbn: str) -> tuple[dict[str, Any] | None, str]:
        value = await self.hot.get_json(self.keys.isbn(isbn))
        tier = "hot"
        if value is None:
            isbn13, _ = isbnlib.normalise(isbn)
            value = await self.cold.get_json(Keys.isbn_object(isbn13 or isbn))
            if value is None:
                return None, "miss"
            tier = "cold"
            await self.hot.set_json(self.keys.isbn(isbn), value, self.hot_ttl_s)
        return value, tier
