"""The hot tier and the warming bookkeeping in Redis: bibliographies, ISBN and title indexes,
"processed" markers and author claims. Keys come from ``bookwarm.keys`` only."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bookwarm.errors import CacheError
from bookwarm.keys import Keys

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# One author's hot-tier writes in one command: its keys and values as one JSON document, applied by
# Redis. The same writes as ~25 pipelined commands cost the writer ~0.8 ms an author in redis-py's
# reply handling and command packing (docs/decisions.md); this costs it one reply.
_WRITE = """
local ops = cjson.decode(ARGV[1])
for _, op in ipairs(ops.set) do redis.call('SET', op[1], op[2], 'EX', op[3]) end
for _, op in ipairs(ops.hset) do
  redis.call('HSET', op[1], unpack(op[2]))
  if op[3] > 0 then redis.call('EXPIRE', op[1], op[3]) end
end
return 1
"""

HSET_ARGS = 2_000  # fields and values an HSET of the script takes at once (Lua's unpack stops near 8,000)
T = TypeVar("T")
# The ISBNs of a work the cold tier's index keeps: its main editions (the hot tier holds them all).
INDEXED_ISBNS_PER_WORK = 5


def jittered(ttl_s: int, spread: float = 0.1) -> int:
    """TTL +- 10%, so a warm run's keys do not all expire in the same second."""
    return max(1, int(ttl_s * random.uniform(1 - spread, 1 + spread)))


def text(value: bytes | str) -> str:
    """A Redis reply as text: the client returns bytes (it is not set to decode)."""
    return value.decode() if isinstance(value, bytes) else value


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class HotCache:
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._release = client.register_script(_RELEASE)
        self._extend = client.register_script(_EXTEND)
        self._write = client.register_script(_WRITE)

    async def claim(self, author_key: str, ttl_s: int) -> str | None:
        """Claim an author for this worker (SET NX EX); the token to release it, or None if taken."""
        return (await self.claim_many([author_key], ttl_s))[author_key]

    async def claim_many(self, author_keys: list[str], ttl_s: int) -> dict[str, str | None]:
        """Claim a shard's authors in one round trip: key -> token, or None where another run holds it."""
        tokens = {k: uuid.uuid4().hex for k in author_keys}
        pipe = self.client.pipeline(transaction=False)
        for key, token in tokens.items():
            pipe.set(self.keys.claim(key), token, nx=True, ex=ttl_s)
        results = await self._call(pipe.execute())
        claimed: dict[str, str | None] = dict(tokens)
        refused = [k for k, ok in zip(tokens, results, strict=True) if not ok]
        if refused:
            # The client runs a pipeline again when Redis drops the connection (a blip, a failover):
            # a SET that landed the first time is refused the second, by our own claim. The token
            # tells ours (which would otherwise be left to lapse, its author waited on) from another's.
            held = await self._call(self.client.mget([self.keys.claim(k) for k in refused]))
            for key, value in zip(refused, held, strict=True):
                if value not in (tokens[key], tokens[key].encode()):
                    claimed[key] = None
        return claimed

    async def extend_many(self, claims: dict[str, str], ttl_s: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key, token in claims.items():
            await self._extend(keys=[self.keys.claim(key)], args=[token, ttl_s], client=pipe)
        await self._call(pipe.execute())

    async def release_many(self, claims: dict[str, str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key, token in claims.items():
            await self._release(keys=[self.keys.claim(key)], args=[token], client=pipe)
        await self._call(pipe.execute())

    async def release(self, author_key: str, token: str) -> None:
        await self._call(self._release(keys=[self.keys.claim(author_key)], args=[token]))

    async def extend_claim(self, author_key: str, token: str, ttl_s: int) -> bool:
        return bool(await self._call(self._extend(keys=[self.keys.claim(author_key)], args=[token, ttl_s])))

    async def is_claimed(self, author_key: str) -> bool:
        return bool(await self._call(self.client.exists(self.keys.claim(author_key))))

    async def claimed(self, author_keys: list[str]) -> set[str]:
        """Those of ``author_keys`` some run holds a claim on now (one round trip)."""
        if not author_keys:
            return set()
        values = await self._call(self.client.mget([self.keys.claim(k) for k in author_keys]))
        return {key for key, value in zip(author_keys, values, strict=True) if value is not None}

    async def processed(self, author_key: str) -> dict[str, Any] | None:
        raw = await self._call(self.client.get(self.keys.processed(author_key)))
        return json.loads(raw) if raw else None

    async def processed_many(self, author_keys: list[str]) -> list[dict[str, Any] | None]:
        """The processed markers of many authors in one round trip (None: not warmed, or expired)."""
        if not author_keys:
            return []
        raw = await self._call(self.client.mget([self.keys.processed(k) for k in author_keys]))
        return [json.loads(value) if value else None for value in raw]

    def pipeline(self) -> Any:
        """A non-transactional pipeline: a batch's writes in one round trip (``execute``)."""
        return self.client.pipeline(transaction=False)

    async def execute(self, pipe: Any) -> list[Any]:
        return await self._call(pipe.execute())

    def stage_bibliography(
        self, pipe: Any, bibliography: dict[str, Any], isbn_entries: dict[str, dict[str, Any]], ttl_s: int
    ) -> None:
        """author:{key}, isbn:{isbn} for every edition, search:title:{title} hash fields, the ISBN
        index (the cold tier's way from an ISBN to its author) and OpenLibrary's keys, onto ``pipe``
        as one script call (``_WRITE``)."""
        key = bibliography["author"]["key"]
        sets: list[list[Any]] = [[self.keys.author(key), dumps(bibliography), jittered(ttl_s)]]
        sets += [
            [self.keys.isbn(isbn), dumps(entry), jittered(ttl_s)] for isbn, entry in isbn_entries.items()
        ]
        hsets: list[list[Any]] = []
        name = bibliography["author"]["name"]
        for work in bibliography["works"]:
            entry = {
                "title": work["title"],
                "author": name,
                "author_key": key,
                "openlibrary_key": work.get("openlibrary_key"),
            }
            hsets.append([self.keys.title(work["title_key"]), [key, dumps(entry)], jittered(ttl_s)])
        hsets += self._isbn_index(key, bibliography)
        hsets += [
            [h, fields[i : i + HSET_ARGS], ttl]
            for h, fields, ttl in self._index(bibliography)
            for i in range(0, len(fields), HSET_ARGS)
        ]
        # What ``Script.__call__`` does with a pipeline, without its coroutine: the pipeline loads the
        # script before it runs (after a Redis restart too), then the call is queued.
        pipe.scripts.add(self._write)
        pipe.evalsha(self._write.sha, 1, self.keys.author(key), dumps({"set": sets, "hset": hsets}))

    def _isbn_index(self, author_key: str, bibliography: dict[str, Any]) -> list[list[Any]]:
        """ISBN-13 -> author key, no TTL, in hashes of a few dozen ISBNs each (compact listpacks):
        what replaced one object per ISBN in the cold tier (docs/cache-contract.md)."""
        buckets: dict[str, list[str]] = {}
        for work in bibliography["works"]:
            for isbn13 in work["isbn13"][:INDEXED_ISBNS_PER_WORK]:
                buckets.setdefault(self.keys.isbn_index(isbn13), []).extend((isbn13, author_key))
        return [[bucket, fields, 0] for bucket, fields in buckets.items()]

    async def isbn_author(self, isbn13: str) -> str | None:
        """The author key the ISBN index holds for an ISBN-13, if any."""
        raw = await self._call(self.client.hget(self.keys.isbn_index(isbn13), isbn13))
        return text(raw) if raw else None

    def stage_negative(self, pipe: Any, author_key: str, entry: dict[str, Any], ttl_s: int) -> None:
        pipe.set(self.keys.author(author_key), dumps(entry), ex=ttl_s)

    def stage_processed(self, pipe: Any, author_key: str, record: dict[str, Any], ttl_s: int) -> None:
        pipe.set(self.keys.processed(author_key), dumps(record), ex=ttl_s)

    async def stage_release(self, pipe: Any, author_key: str, token: str) -> None:
        await self._release(keys=[self.keys.claim(author_key)], args=[token], client=pipe)

    def _index(self, bibliography: dict[str, Any]) -> list[list[Any]]:
        """OpenLibrary's author and work keys -> this author, for the refresh from the change feed.
        No TTL: an entry whose author is no longer held is dropped when a change names it."""
        author = bibliography["author"]
        if not author.get("openlibrary_key"):
            return []
        writes: list[list[Any]] = [
            [
                self.keys.ol_authors(),
                [author["openlibrary_key"], dumps({"key": author["key"], "name": author["name"]})],
                0,
            ]
        ]
        works: list[str] = []
        for w in bibliography["works"]:
            if w.get("openlibrary_key"):
                people = ",".join(
                    p["openlibrary_key"] for p in w.get("authors", []) if p.get("openlibrary_key")
                )
                works += (w["openlibrary_key"], people or author["openlibrary_key"])
        if works:
            writes.append([self.keys.ol_works(), works, 0])
        return writes

    async def get_json(self, key: str) -> Any | None:
        raw = await self.get_raw(key)
        return json.loads(raw) if raw else None

    async def get_raw(self, key: str) -> bytes | None:
        """The value's JSON as stored (a reader can send it on without decoding it)."""
        raw = await self._call(self.client.get(key))
        if not raw:
            return None
        return raw if isinstance(raw, bytes) else raw.encode()  # the client is not set to decode

    async def ping(self) -> None:
        """CacheError unless Redis answers (a health check)."""
        await self._call(self.client.ping())

    async def set_raw(self, key: str, raw: bytes, ttl_s: int) -> None:
        await self._call(self.client.set(key, raw, ex=jittered(ttl_s)))

    async def set_json(self, key: str, value: Any, ttl_s: int) -> None:
        await self._call(self.client.set(key, dumps(value), ex=jittered(ttl_s)))

    async def titles(self, title_key: str) -> list[dict[str, Any]]:
        raw = await self._call(self.client.hgetall(self.keys.title(title_key)))
        return [json.loads(v) for v in raw.values()]

    @staticmethod
    async def _call(awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except RedisError as exc:
            raise CacheError(f"Redis failed: {type(exc).__name__}: {exc}") from None
