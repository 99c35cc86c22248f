"""Demand: what readers asked for and did not find, or found stale, kept where readers read.

The original system's one measured win was its hit rate rising from 30-40 % to 85 % once popular
authors were pre-warmed, from a list kept by hand. Here the read path itself says what is popular:
every miss (and every stale hit) adds one to the asked author's or ISBN's score in the current UTC
hour's sorted set. Buckets expire by themselves after ``keep_days``, so demand decays and never grows
without bound; ranking sums the buckets still there (ZUNIONSTORE, server side).

What a reader sends is hostile input: a member longer than ``MAX_MEMBER`` or holding control
characters is not recorded, and ranking drops junk names ("Unknown", "Various") before it counts,
so volume alone is not demand. docs/cache-contract.md says how a reader in another language records.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis

from bookwarm import clock
from bookwarm.cache.hot import HotCache, text
from bookwarm.keys import Keys
from bookwarm.parsing.names import author_key, is_junk

MAX_MEMBER = 300  # characters of an author key or a name, as the flows' parameters
_KEY = re.compile(r"^[^\s\x00-\x1f\x7f]{1,300}$")
_NAME = re.compile(r"^[^\x00-\x1f\x7f=+@|\-][^\x00-\x1f\x7f|]{0,299}$")  # as flows.params.NAME_PATTERN
_ISBN13 = re.compile(r"^97[89][0-9]{10}$")


def hour_bucket(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y%m%d%H")


@dataclass(frozen=True)
class Asked:
    """One ranked entry: an author key (with the name a reader used) or an ISBN, and its misses."""

    member: str
    misses: float
    name: str = ""


class Demand:
    def __init__(
        self, client: aioredis.Redis, keys: Keys, keep_days: int, now: Callable[[], float] = clock.now
    ) -> None:
        """``now``: the clock buckets are read from (a benchmark moves it over simulated days)."""
        self.client = client
        self.keys = keys
        self.keep_s = keep_days * 86400
        self._now = now

    def _hours(self) -> list[str]:
        """Every bucket that may still exist, newest first."""
        now = self._now()
        return [hour_bucket(now - h * 3600) for h in range(self.keep_s // 3600 + 1)]

    async def record_author(self, key: str, name: str) -> bool:
        """One miss of ``author:{key}``; False when the key or name is not one bookwarm would write."""
        if not _KEY.match(key) or not _NAME.match(name) or author_key(name) != key:
            return False
        hour = hour_bucket(self._now())
        pipe = self.client.pipeline(transaction=False)
        pipe.zincrby(self.keys.demand_authors(hour), 1, key)
        pipe.hsetnx(self.keys.demand_names(hour), key, name)
        pipe.expire(self.keys.demand_authors(hour), self.keep_s)
        pipe.expire(self.keys.demand_names(hour), self.keep_s)
        await HotCache._call(pipe.execute())
        return True

    async def record_isbn(self, isbn13: str) -> bool:
        if not _ISBN13.match(isbn13):
            return False
        hour = hour_bucket(self._now())
        pipe = self.client.pipeline(transaction=False)
        pipe.zincrby(self.keys.demand_isbns(hour), 1, isbn13)
        pipe.expire(self.keys.demand_isbns(hour), self.keep_s)
        await HotCache._call(pipe.execute())
        return True

    async def top_authors(self, limit: int) -> list[Asked]:
        """The most-missed authors over the kept days, junk dropped, most first, with a name each."""
        hours = self._hours()
        ranked = await self._top([self.keys.demand_authors(h) for h in hours], limit * 2 + 50)
        ranked = [(key, n) for key, n in ranked if not is_junk(key)]
        names = await self._names(hours, [key for key, _ in ranked])
        return [Asked(key, n, names[key]) for key, n in ranked if key in names][:limit]

    async def top_isbns(self, limit: int) -> list[Asked]:
        ranked = await self._top([self.keys.demand_isbns(h) for h in self._hours()], limit)
        return [Asked(isbn, n) for isbn, n in ranked]

    async def _top(self, bucket_keys: list[str], limit: int) -> list[tuple[str, float]]:
        scratch = self.keys.demand_rank(uuid.uuid4().hex)
        pipe = self.client.pipeline(transaction=True)
        pipe.zunionstore(scratch, bucket_keys)  # missing buckets count as empty
        pipe.zrange(scratch, 0, limit - 1, desc=True, withscores=True)
        pipe.delete(scratch)
        _, ranked, _ = await HotCache._call(pipe.execute())
        return [(text(m), float(score)) for m, score in ranked]

    async def _names(self, hours: list[str], keys: list[str]) -> dict[str, str]:
        """The most recent name a reader used for each key (a name that is not a clean one line drops
        the key: it cannot be warmed under it)."""
        if not keys:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for hour in hours:
            pipe.hmget(self.keys.demand_names(hour), keys)
        found: dict[str, str] = {}
        for values in await HotCache._call(pipe.execute()):
            for key, raw in zip(keys, values, strict=True):
                if raw is not None and key not in found:
                    name = text(raw)
                    if _NAME.match(name):
                        found[key] = name
        return found
