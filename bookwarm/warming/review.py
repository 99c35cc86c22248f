"""Authors whose OpenLibrary identity was too uncertain to cache (namesakes), and the operator's
answers. BookWyrm asks its users to confirm such matches; bookwarm asks the operator once.

- ``warming:job:{job_id}:review``: a job's list, author key -> entry (candidates, the user's books);
- ``warming:review``: every open entry, across jobs (what `bookwarm review` shows by default);
- ``warming:pin:{author_key}``: the OpenLibrary key an operator chose; every later run and worker
  fetches that author by it, without a name search and without review;
- ``warming:blocklist``: names an operator said are not authors; runs skip them.

Pins and the blocklist have no TTL: they are decisions, not cache.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from bookwarm.cache.hot import HotCache, dumps, text
from bookwarm.keys import Keys

MAX_BOOKS = 3  # the user's own books shown per entry


def review_entry(
    author: dict[str, Any], depth: int, job_id: str, identity: dict[str, Any], best_works: int
) -> dict[str, Any]:
    """An entry: the name as the library wrote it, and every candidate OpenLibrary offered."""
    candidates = [
        {
            "openlibrary_key": identity.get("openlibrary_key"),
            "name": identity.get("name"),
            "works": best_works,
        }
    ] + [dict(a) for a in identity.get("alternates") or []]
    return {
        "name": author["name"],
        "key": author["key"],
        "depth": depth,
        "job_id": job_id,
        "confidence": identity.get("confidence"),
        "candidates": [c for c in candidates if c.get("openlibrary_key")],
        "books": list(author.get("titles") or [])[:MAX_BOOKS],
    }


class ReviewStore:
    def __init__(self, client: aioredis.Redis, keys: Keys, job_ttl_s: int) -> None:
        self.client = client
        self.keys = keys
        self.job_ttl_s = job_ttl_s

    async def add(self, entry: dict[str, Any]) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.job_review(entry["job_id"]), entry["key"], dumps(entry))
        pipe.expire(self.keys.job_review(entry["job_id"]), self.job_ttl_s)
        pipe.hset(self.keys.reviews(), entry["key"], dumps(entry))
        await HotCache._call(pipe.execute())

    async def add_by_operator(self, name: str, key: str) -> None:
        """An operator puts a name on the review list by hand (`bookwarm review resolve --force`),
        so that it can be resolved like any namesake a job found."""
        entry = {"name": name, "key": key, "depth": 0, "job_id": "", "confidence": None, "candidates": []}
        entry["books"] = []
        await HotCache._call(self.client.hset(self.keys.reviews(), key, dumps(entry)))

    async def for_job(self, job_id: str) -> list[dict[str, Any]]:
        return self._sorted(await HotCache._call(self.client.hgetall(self.keys.job_review(job_id))))

    async def open(self) -> list[dict[str, Any]]:
        return self._sorted(await HotCache._call(self.client.hgetall(self.keys.reviews())))

    async def find(self, author_key: str) -> dict[str, Any] | None:
        raw = await HotCache._call(self.client.hget(self.keys.reviews(), author_key))
        return json.loads(raw) if raw else None

    async def pin(self, author_key: str, openlibrary_key: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.keys.pin(author_key), openlibrary_key)
        pipe.srem(self.keys.blocklist(), author_key)
        pipe.hdel(self.keys.reviews(), author_key)
        pipe.delete(self.keys.processed(author_key))  # its short negative entry no longer holds
        await HotCache._call(pipe.execute())

    async def block(self, author_key: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(self.keys.blocklist(), author_key)
        pipe.delete(self.keys.pin(author_key))
        pipe.hdel(self.keys.reviews(), author_key)
        await HotCache._call(pipe.execute())

    async def decisions(self, author_keys: list[str]) -> tuple[dict[str, str], set[str]]:
        """(pins, blocked) among ``author_keys``: two reads for a whole shard."""
        if not author_keys:
            return {}, set()
        pipe = self.client.pipeline(transaction=False)
        pipe.mget([self.keys.pin(k) for k in author_keys])
        pipe.smismember(self.keys.blocklist(), author_keys)
        pinned, flags = await HotCache._call(pipe.execute())
        pins = {k: text(v) for k, v in zip(author_keys, pinned, strict=True) if v is not None}
        return pins, {k for k, flag in zip(author_keys, flags, strict=True) if flag}

    @staticmethod
    def _sorted(raw: dict[Any, Any]) -> list[dict[str, Any]]:
        return sorted((json.loads(v) for v in raw.values()), key=lambda e: (e["depth"], e["key"]))
