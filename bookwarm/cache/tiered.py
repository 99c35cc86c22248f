"""Both tiers together: the write path of a warmed author and the read path of a lookup.

Writes go to Redis (hours) and the object store (weeks: one object per author); reads try Redis,
fall back to the object store and promote a cold hit back into Redis. An ISBN reaches its author's
object through the ISBN index in Redis (no TTL), written with the hot tier. Both sides use ``bookwarm.keys``, so every author
a run warms is found by the lookup (a contract test holds this).

A reader's lookup (``lookup_author``, ``lookup_isbn``) also says whether the entry is stale (fetched
from OpenLibrary more than the soft TTL ago: served all the same, a reader never waits for a
provider) and records misses and stale hits as demand, which the `warm-demand` flow warms. A fresh
hot hit records nothing and costs one GET, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from bookwarm import clock
from bookwarm.cache.demand import Demand
from bookwarm.cache.hot import HotCache
from bookwarm.cache.objectstore import ObjectStore
from bookwarm.errors import CacheError
from bookwarm.keys import Keys
from bookwarm.parsing import isbn as isbnlib


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


def warmed_at(bibliography: dict[str, Any]) -> float | None:
    """When OpenLibrary's list was fetched (epoch seconds): ``warmed_at``, else the older
    ``fetched_at`` of entries written before it existed."""
    return clock.parse_iso(bibliography.get("warmed_at") or bibliography.get("fetched_at"))


def is_stale(bibliography: dict[str, Any], soft_ttl_s: int, now: float | None = None) -> bool:
    """A bibliography (not a negative entry, which expires by itself) fetched over the soft TTL ago."""
    if bibliography.get("status") not in ("ok", "partial"):
        return False
    fetched = warmed_at(bibliography)
    return fetched is None or (now or clock.now()) - fetched > soft_ttl_s


@dataclass(frozen=True)
class Read:
    """What a reader gets: the value (None on a miss), the tier it came from ('hot', 'cold',
    'miss') and whether it is stale (served, and refreshed by the next warm-demand run). ``raw``
    is the value's JSON as stored, for a reader that sends it on as it is (the HTTP API)."""

    value: dict[str, Any] | None
    tier: str
    stale: bool = False
    raw: bytes | None = None


class TieredCache:
    def __init__(
        self,
        hot: HotCache,
        cold: ObjectStore,
        *,
        hot_ttl_s: int,
        cold_concurrency: int = 32,
        demand: Demand | None = None,
        soft_ttl_s: int = 7 * 24 * 3600,
    ) -> None:
        self.hot = hot
        self.cold = cold
        self.keys: Keys = hot.keys
        self.hot_ttl_s = hot_ttl_s
        self.demand = demand
        self.soft_ttl_s = soft_ttl_s
        self._cold_gate = asyncio.Semaphore(cold_concurrency)

    async def write(self, bibliography: dict[str, Any]) -> int:
        """Write one author's bibliography to both tiers; return the number of works cached."""
        [error] = await self.put_cold([bibliography])
        if error is not None:
            raise error
        pipe = self.hot.pipeline()
        self.stage_hot(pipe, bibliography)
        await self.hot.execute(pipe)
        return len(bibliography["works"])

    async def put_cold(self, bibliographies: list[dict[str, Any]]) -> list[CacheError | None]:
        """One object per author, in parallel: each author's error, or None. The ISBNs go to the
        index with the hot tier's writes (one object per ISBN cost ~25 PUTs an author)."""
        results = await asyncio.gather(
            *(self._put(Keys.author_object(b["author"]["key"]), b) for b in bibliographies),
            return_exceptions=True,
        )
        errors: list[CacheError | None] = []
        for result in results:
            if isinstance(result, CacheError):
                errors.append(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                errors.append(None)
        return errors

    async def _put(self, key: str, value: Any) -> None:
        async with self._cold_gate:
            await self.cold.put_json(key, value)

    def stage_hot(self, pipe: Any, bibliography: dict[str, Any]) -> None:
        """The hot tier's writes of one author, and its ISBNs in the index, onto a batch's pipeline."""
        self.hot.stage_bibliography(pipe, bibliography, isbn_entries(bibliography), self.hot_ttl_s)

    async def read_author(self, author_key: str) -> tuple[dict[str, Any] | None, str]:
        """(bibliography, tier) where tier is 'hot', 'cold' (then promoted) or 'miss'."""
        raw, tier = await self.read_author_raw(author_key)
        return (json.loads(raw) if raw else None), tier

    async def read_author_raw(self, author_key: str) -> tuple[bytes | None, str]:
        """(the bibliography's JSON as stored, tier): the one way both tiers are read."""
        raw = await self.hot.get_raw(self.keys.author(author_key))
        if raw is not None:
            return raw, "hot"
        raw = await self.cold.get_raw(Keys.author_object(author_key))
        if raw is None:
            return None, "miss"
        await self.hot.set_raw(self.keys.author(author_key), raw, self.hot_ttl_s)  # promoted as it is
        return raw, "cold"

    async def lookup_author(self, author_key: str, asked_as: str) -> Read:
        """A reader's author lookup: a miss, or a stale hit, is recorded as demand for ``asked_as``."""
        raw, tier = await self.read_author_raw(author_key)
        value = json.loads(raw) if raw else None
        stale = value is not None and is_stale(value, self.soft_ttl_s)
        if (value is None or stale) and self.demand is not None:
            await self._note(self.demand.record_author(author_key, asked_as))
        return Read(value, tier, stale, raw)

    async def lookup_isbn(self, isbn: str) -> Read:
        """A reader's ISBN lookup: a miss is recorded as demand for the ISBN (warm-demand resolves
        it to its author through OpenLibrary)."""
        entry, tier = await self.read_isbn(isbn)
        if entry is None:
            isbn13, _ = isbnlib.normalise(isbn)
            if isbn13 and self.demand is not None:
                await self._note(self.demand.record_isbn(isbn13))
        return Read(entry, tier)

    @staticmethod
    async def _note(recording: Awaitable[bool]) -> None:
        """Demand is best effort: a reader is answered even when it cannot be recorded."""
        with contextlib.suppress(CacheError):
            await recording

    async def read_isbn(self, isbn: str) -> tuple[dict[str, Any] | None, str]:
        """(entry, tier). Cold: the ISBN index names the author, whose bibliography (hot, or its
        object) holds the work; objects of the earlier layout (one per ISBN) are read after that."""
        value = await self.hot.get_json(self.keys.isbn(isbn))
        if value is not None:
            return value, "hot"
        isbn13, _ = isbnlib.normalise(isbn)
        value = await self._indexed(isbn13) if isbn13 else None
        if value is None:
            value = await self.cold.get_json(Keys.isbn_object(isbn13 or isbn))
        if value is None:
            return None, "miss"
        await self.hot.set_json(self.keys.isbn(isbn), value, self.hot_ttl_s)
        return value, "cold"

    async def _indexed(self, isbn13: str) -> dict[str, Any] | None:
        author_key = await self.hot.isbn_author(isbn13)
        if author_key is None:
            return None
        bibliography, _ = await self.read_author(author_key)
        return isbn_entries(bibliography).get(isbn13) if bibliography else None
