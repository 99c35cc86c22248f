"""Enrichment from Google Books and ISBNdb, within each provider's daily budget.

It adds fields to works OpenLibrary already listed (covers, descriptions, categories, editions),
each with its provenance, and never changes an author's status. What today's budget cannot cover
waits in Redis as pending enrichment (`enrich:pending:{provider}`: author key -> what is missing),
counted in its job's record, and is drained by the `enrich` flow after the UTC quota reset.

ISBNdb is asked by whichever endpoint costs fewer quota units for that author on the configured
plan: `/author/{name}` (one unit per page of up to 1,000 books) or `POST /books` with the works'
ISBNs (up to `batch` per call; one unit per call, or per ISBN where the plan counts so).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from bookwarm.cache.hot import HotCache, dumps
from bookwarm.deadline import end_task
from bookwarm.errors import ProviderError
from bookwarm.providers.http import CallStats
from bookwarm.providers.models import Work
from bookwarm.warming.context import WarmContext
from bookwarm.warming.jobs import now_iso

ENRICHERS = ("google_books", "isbndb")
# Authors of a chunk enriched at once: enough to keep a limited provider's rate busy through its
# latency (5/s at 150 ms is under 1), few enough that, with the limits off, enrichment does not
# crowd the shard's bibliographies out of the event loop.
IN_FLIGHT = 4
T = TypeVar("T")
LOCK_WAIT_S = 10.0  # how long an enrichment waits for a warm of the same author to finish
WANTS = {"google_books": ("description", "categories", "cover"), "isbndb": ("cover", "description")}


@dataclass
class Pending:
    """One author's enrichment still to do with one provider, and what its works miss."""

    name: str
    key: str
    depth: int
    job_id: str
    missing: dict[str, int] = field(default_factory=dict)


def missing_fields(bibliography: dict[str, Any], provider: str) -> dict[str, int]:
    """How many works lack each field this provider can add (empty: nothing to ask it)."""
    counts = {f: sum(1 for w in bibliography.get("works", []) if not w.get(f)) for f in WANTS[provider]}
    return {f: n for f, n in counts.items() if n}


class PendingStore:
    """Pending enrichment in Redis, shared by every run and worker; each job counts its own."""

    def __init__(self, ctx: WarmContext) -> None:
        self.ctx = ctx

    def _key(self, provider: str) -> str:
        return self.ctx.keys.enrich_pending(provider)

    async def add(self, provider: str, entries: list[Pending]) -> None:
        if not entries:
            return
        pipe = self.ctx.redis.pipeline(transaction=False)
        for entry in entries:
            pipe.hset(self._key(provider), entry.key, dumps(asdict(entry)))
            pipe.hincrby(self.ctx.keys.job(entry.job_id), f"enrich_pending_{provider}", 1)
        await HotCache._call(pipe.execute())

    async def done(self, provider: str, entry: Pending) -> None:
        removed = await HotCache._call(self.ctx.redis.hdel(self._key(provider), entry.key))
        if removed:
            pipe = self.ctx.redis.pipeline(transaction=False)
            pipe.hincrby(self.ctx.keys.job(entry.job_id), f"enrich_pending_{provider}", -1)
            pipe.hincrby(self.ctx.keys.job(entry.job_id), f"enrich_done_{provider}", 1)
            await HotCache._call(pipe.execute())

    async def list(self, provider: str, job_id: str | None = None, limit: int | None = None) -> list[Pending]:
        """Library authors first, then co-authors by depth; one job's only when ``job_id`` is given."""
        raw = await HotCache._call(self.ctx.redis.hgetall(self._key(provider)))
        entries = [Pending(**json.loads(v)) for v in raw.values()]
        if job_id is not None:
            entries = [e for e in entries if e.job_id == job_id]
        entries.sort(key=lambda e: (e.depth, e.key))
        return entries[:limit] if limit is not None else entries

    async def count(self, provider: str) -> int:
        return int(await HotCache._call(self.ctx.redis.hlen(self._key(provider))))


async def record_pending(
    ctx: WarmContext, job_id: str, depth: int, bibliography: dict[str, Any]
) -> list[str]:
    """Note what a freshly warmed author still misses, per provider; returns those providers."""
    store = PendingStore(ctx)
    providers = []
    for provider in ENRICHERS:
        if provider == "isbndb" and (ctx.providers is None or ctx.providers.isbndb is None):
            continue  # no key configured: ISBNdb is skipped, not pending
        missing = missing_fields(bibliography, provider)
        if missing:
            author = bibliography["author"]
            await store.add(provider, [Pending(author["name"], author["key"], depth, job_id, missing)])
            providers.append(provider)
    return providers


@dataclass
class EnrichResult:
    done: int = 0
    filled: int = 0
    calls: int = 0
    stopped: str | None = None  # why the chunk stopped early (quota spent, provider down)


async def enrich_chunk(
    ctx: WarmContext, provider: str, entries: list[Pending], stop: asyncio.Event | None = None
) -> EnrichResult:
    """Enrich these authors with one provider, side by side (the shared limiter paces the calls),
    until its budget refuses a call: then the rest of the chunk stays pending.

    ``stop`` (set when the shard's last bibliography is written): authors not asked yet are left
    pending, and one whose call has not answered within STOP_GRACE_S is given up (pending too).
    Waiting on them held each shard's end, and the job's, by up to 5 s: their calls mostly wait on
    the provider's rate (ISBNdb 1/s, shared by every shard's enrichment)."""
    store = PendingStore(ctx)
    result = EnrichResult()
    in_flight = asyncio.Semaphore(IN_FLIGHT)

    async def one(entry: Pending) -> None:
        async with in_flight:
            await enrich(entry)

    async def enrich(entry: Pending) -> None:
        if result.stopped or (stop is not None and stop.is_set()):
            return
        cached, _ = await ctx.cache.read_author(entry.key)
        if not cached or cached.get("status") not in ("ok", "partial") or not cached.get("works"):
            await store.done(provider, entry)  # evicted or re-warmed as unknown: nothing to enrich
            return
        stats = CallStats()
        try:
            asked = await _unless_stopped(_ask(ctx, provider, cached, stats), stop)
            if asked is None:
                return  # stopped: it stays pending for the `enrich` flow
            found = asked[0]
        except ProviderError as exc:  # a spent budget (QuotaExhausted) or the provider down
            result.stopped = result.stopped or str(exc)
            return
        finally:
            calls = sum(stats.calls.values())
            result.calls += calls
            if calls and entry.job_id:
                await ctx.jobs.incr(entry.job_id, provider_calls=calls)
        filled = await _fill_and_write(ctx, entry.key, found, provider)
        if filled is None:
            return  # the author is being written by someone else: it stays pending
        await store.done(provider, entry)
        result.done += 1
        result.filled += filled

    await asyncio.gather(*(one(e) for e in entries))
    return result


STOP_GRACE_S = 0.2  # a call already answering when enrichment is stopped may finish (its quota is spent)


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event | None) -> tuple[T] | None:
    """``work``'s result (as a 1-tuple), or None if ``stop`` was set and it did not end within
    STOP_GRACE_S after (then it is cancelled)."""
    if stop is None:
        return (await work,)
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait({task}, timeout=STOP_GRACE_S)
        if task.done():
            return (task.result(),)
        return None
    finally:
        stopped.cancel()
        if not task.done():
            await end_task(task)


async def _fill_and_write(ctx: WarmContext, key: str, found: list[Work], provider: str) -> int | None:
    """Read, fill and rewrite under the author's claim, the one a warm takes: the other provider's
    enrichment or a re-warm of the same author cannot interleave and lose a write."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while (token := await ctx.hot.claim(key, ctx.claim_ttl_s)) is None:
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.05)
    try:
        cached, _ = await ctx.cache.read_author(key)
        if not cached or not cached.get("works"):
            return 0
        filled = fill_works(cached["works"], found, provider)
        sources = cached.setdefault("sources", {})
        sources[provider] = {"ok": True, "works": len(found), "filled": filled, "enriched_at": now_iso()}
        await ctx.cache.write(cached)
        return filled
    finally:
        await ctx.hot.release(key, token)


async def _ask(ctx: WarmContext, provider: str, cached: dict[str, Any], stats: CallStats) -> list[Work]:
    assert ctx.providers is not None
    name = cached["author"]["name"]
    if provider == "google_books":
        return (await ctx.providers.google.fetch(name, stats)).works
    isbndb = ctx.providers.isbndb
    if isbndb is None:
        return []
    settings = ctx.settings.isbndb
    isbns = isbns_to_ask(cached)
    endpoint = cheaper_isbndb_endpoint(
        works=len(cached["works"]), isbns=len(isbns), batch=settings.batch, counting=settings.counting
    )
    if endpoint == "books":
        found: list[Work] = []
        for start in range(0, len(isbns), settings.batch):
            found.extend(await isbndb.books(isbns[start : start + settings.batch], stats))
        return found
    return (await isbndb.fetch(name, stats)).works


def isbns_to_ask(bibliography: dict[str, Any]) -> list[str]:
    """One ISBN per work that misses something ISBNdb adds: its main edition answers for the work."""
    wanted = WANTS["isbndb"]
    return [
        w["isbn13"][0] for w in bibliography["works"] if w.get("isbn13") and any(not w.get(f) for f in wanted)
    ]


def isbndb_units(endpoint: str, *, works: int, isbns: int, batch: int, counting: str) -> int:
    """Quota units one author costs on an endpoint. `/author` answers up to 1,000 books a page."""
    if endpoint == "author":
        return max(1, math.ceil(works / 1000))
    if isbns == 0:
        return 0
    return isbns if counting == "per_isbn" else math.ceil(isbns / batch)


def cheaper_isbndb_endpoint(*, works: int, isbns: int, batch: int, counting: str) -> str:
    """`books` (targeted by ISBN) unless `/author` costs fewer units; a tie goes to `books`."""
    if isbns == 0:
        return "author"
    by_books = isbndb_units("books", works=works, isbns=isbns, batch=batch, counting=counting)
    by_author = isbndb_units("author", works=works, isbns=isbns, batch=batch, counting=counting)
    return "books" if by_books <= by_author else "author"


def fill_works(works: list[dict[str, Any]], found: list[Work], provider: str) -> int:
    """Fill the cached works' missing fields from a provider's works matched by ISBN, then title;
    editions (ISBNs) are added. Unmatched works are not added: OpenLibrary's list is the list.
    Returns the number of fields filled."""
    by_isbn = {i: w for w in works for i in w.get("isbn13") or []}
    by_title = {w.get("title_key"): w for w in works}
    filled = 0
    for other in found:
        target = next((by_isbn[i] for i in other.isbn13 if i in by_isbn), None) or by_title.get(
            other.title_key
        )
        if target is None:
            continue
        sources = target.setdefault("sources", {})
        for name in ("description", "cover", "first_publish_year"):
            value = getattr(other, name)
            if not target.get(name) and value:
                target[name] = value
                sources[name] = provider
                filled += 1
        if other.categories and not target.get("categories"):
            target["categories"] = list(other.categories)
            sources["categories"] = provider
            filled += 1
        new = [i for i in other.isbn13 if i not in (target.get("isbn13") or [])]
        if new:
            target.setdefault("isbn13", []).extend(new)
            sources.setdefault("editions", provider)
            by_isbn.update(dict.fromkeys(new, target))
    return filled
