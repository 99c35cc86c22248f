"""Warm one author from what its shard's OpenLibrary batches found: write both tiers, mark done.

The status comes from OpenLibrary alone (`openlibrary_bibliography`). An author OpenLibrary could
not answer for is never cached with no works: it raises, its task retries (fetching it alone), and
then it is a dead letter. An author this shard did not claim (another run holds it) waits for that
run's result and uses it like a fresh skip; if that run died, it is claimed and fetched alone.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from bookwarm import clock
from bookwarm.errors import CacheError, ProviderUnavailable
from bookwarm.providers.openlibrary_batch import openlibrary_bibliography
from bookwarm.warming.context import WarmContext
from bookwarm.warming.outcome import AuthorOutcome
from bookwarm.warming.review import review_entry
from bookwarm.warming.shard import ClaimKeeper, Fetched, fetch_alone, fresh_at, wanted_for

POLL_S = 0.25
STATUS = {"ok": "warmed", "partial": "partial", "review": "review", "unknown": "unknown"}


async def warm_one(
    ctx: WarmContext,
    author: dict[str, Any],
    depth: int,
    job_id: str,
    *,
    force: bool = False,
    fetched: Fetched | None = None,
    keeper: ClaimKeeper | None = None,
    fresh: dict[str, Any] | None = None,
    refetch: bool = False,
) -> AuthorOutcome:
    """``fetched`` and a claim in ``keeper`` come from the shard; without a claim the author is
    claimed here and fetched alone. ``refetch`` (a task retry) asks OpenLibrary again only for what
    it did not answer: what it did answer is in ``fetched``, kept across the task's retries."""
    started = time.monotonic()
    name, key = author["name"], author["key"]
    force = force or bool(author.get("refresh"))  # a stale entry warm-demand refreshes
    if fresh is not None:
        outcome = await _skipped(ctx, name, key, depth, fresh)
    elif keeper is not None and key in keeper.claims:
        # On a failure the claim stays with the shard's keeper (renewed, released when the shard
        # ends), so the task's retry comes back here and writes what was already fetched.
        fetched = fetched if fetched is not None else Fetched.not_asked()
        if fetched.needs_fetch(retry=refetch):
            fetched.take(await fetch_alone(ctx, job_id, wanted_for(author)))
        outcome = await _write(ctx, author, depth, fetched, job_id, {key: keeper.claims[key]})
        keeper.forget([key])  # released with the writes
    else:
        outcome = await _claim_and_fetch(ctx, author, depth, job_id, force)
    outcome.seconds = round(time.monotonic() - started, 4)
    outcome.counted = await ctx.jobs.count(
        job_id, key, outcome.status, outcome.works if outcome.status != "skipped" else 0
    )
    return outcome


async def _claim_and_fetch(
    ctx: WarmContext, author: dict[str, Any], depth: int, job_id: str, force: bool
) -> AuthorOutcome:
    name, key = author["name"], author["key"]
    while True:
        if not force and (record := await _fresh_record(ctx, key, depth)) is not None:
            return await _skipped(ctx, name, key, depth, record, concurrent=True)
        token = await ctx.hot.claim(key, ctx.claim_ttl_s)
        if token is not None:
            break
        while await ctx.hot.is_claimed(key):  # renewed while its owner lives, gone within a TTL if not
            await asyncio.sleep(POLL_S)
        force = False  # the other run's result counts as fresh now
    async with ClaimKeeper(ctx, {key: token}):  # renewed while it works, released on the way out
        record = await ctx.hot.processed(key)
        if not force and fresh_at(record, depth):
            # written by another run between our look and our claim: its result, not a second fetch
            return await _skipped(ctx, name, key, depth, record, concurrent=True)
        known = dict(author)
        if record and record.get("openlibrary_key"):
            known.setdefault("openlibrary_key", record["openlibrary_key"])
        fetched = await fetch_alone(ctx, job_id, wanted_for(known))
        return await _write(ctx, author, depth, fetched, job_id, {})


async def _fresh_record(ctx: WarmContext, key: str, depth: int) -> dict[str, Any] | None:
    record = await ctx.hot.processed(key)
    return record if fresh_at(record, depth) else None


async def _skipped(
    ctx: WarmContext, name: str, key: str, depth: int, record: dict[str, Any], *, concurrent: bool = False
) -> AuthorOutcome:
    """Skip an author warmed at this depth or shallower within the processed TTL; its cached works
    still give the co-authors of the next level."""
    cached, _ = (None, "") if record.get("status") == "blocked" else await ctx.cache.read_author(key)
    reason = (
        "not an author (blocklist)"
        if record.get("status") == "blocked"
        else "warmed by a concurrent run"
        if concurrent
        else f"fresh: warmed {record.get('last_warmed')} at depth {record.get('depth')}"
    )
    return AuthorOutcome(
        name,
        key,
        depth,
        "skipped",
        works=int(record.get("works_count", 0)),
        coauthors=coauthors(cached) if cached else [],
        reason=reason,
        openlibrary_key=record.get("openlibrary_key"),
    )


async def _write(
    ctx: WarmContext,
    author: dict[str, Any],
    depth: int,
    fetched: Fetched,
    job_id: str,
    claims: dict[str, str],
) -> AuthorOutcome:
    outcomes, failed = await commit(ctx, [prepare(author, depth, fetched)], job_id, claims)
    if failed:
        raise failed[0][1]
    return outcomes[0]


@dataclass
class Prepared:
    """An author's entry as it will be cached, built before any write (a batch writes many)."""

    author: dict[str, Any]
    depth: int
    status: str  # warmed | partial | review | unknown
    data: dict[str, Any]

    @property
    def key(self) -> str:
        return str(self.author["key"])

    @property
    def cached(self) -> bool:
        return self.status in ("warmed", "partial")


def prepare(author: dict[str, Any], depth: int, fetched: Fetched) -> Prepared:
    """The entry to cache, from what OpenLibrary answered; raises when it gave no bibliography."""
    name, key = author["name"], author["key"]
    bibliography = openlibrary_bibliography(name, key, fetched.identity, fetched.works, fetched.error)
    if bibliography.status == "failed":
        # Never an empty cache entry: the author is retried alone, then it is a dead letter.
        reason = bibliography.sources["openlibrary"]["error"] or "OpenLibrary gave no answer"
        raise ProviderUnavailable("openlibrary", f"no bibliography for {name}: {reason}")
    data = bibliography.to_dict()
    # Cached under the key people look up; OpenLibrary's spelling stays in `name` and `resolved_key`.
    data["author"]["resolved_key"] = data["author"]["key"]
    data["author"]["key"] = key
    data["warmed_at"] = data["fetched_at"]  # OpenLibrary's list; enrichment later leaves it as it is
    return Prepared(author, depth, STATUS[bibliography.status], data)


async def commit(
    ctx: WarmContext, prepared: list[Prepared], job_id: str, claims: dict[str, str]
) -> tuple[list[AuthorOutcome], list[tuple[Prepared, CacheError]]]:
    """Write a batch of authors: their objects in parallel, then one Redis pipeline with every
    hot-tier entry, ISBN index, processed marker (last: the author is done) and claim release.
    Returns the outcomes, and the authors whose object failed (written nothing, claims kept). A
    Redis failure raises: nothing is marked done, and the caller retries each author."""
    cached = [p for p in prepared if p.cached]
    errors = await ctx.cache.put_cold([p.data for p in cached])
    failed = [(p, e) for p, e in zip(cached, errors, strict=True) if e is not None]
    lost = {p.key for p, _ in failed}
    written = [p for p in prepared if p.key not in lost]
    redis_settings = ctx.settings.redis
    pipe = ctx.hot.pipeline()
    for p in written:
        if p.cached:
            ctx.cache.stage_hot(pipe, p.data)
        else:
            # Nobody by that name, or a namesake we cannot tell apart: a short negative entry,
            # never an empty "complete" bibliography, and nothing cached as the author.
            ctx.hot.stage_negative(pipe, p.key, _negative(p.data, p.status), redis_settings.negative_ttl_s)
    now = clock.iso_now()
    for p in written:
        ttl = redis_settings.processed_ttl_s if p.status == "warmed" else redis_settings.negative_ttl_s
        record = {
            "works_count": len(p.data["works"]) if p.cached else 0,
            # When OpenLibrary's list is from: the fetch, or the dump a dump load read it from.
            "last_warmed": p.data.get("warmed_at") or now,
            "depth": p.depth,
            "status": p.status,
            "openlibrary_key": p.data["author"]["openlibrary_key"] if p.cached else None,
        }
        ctx.hot.stage_processed(pipe, p.key, record, ttl)
    for p in written:
        if p.key in claims:
            await ctx.hot.stage_release(pipe, p.key, claims[p.key])
    if written:
        await ctx.hot.execute(pipe)
    return [await _outcome(ctx, p, job_id) for p in written], failed


async def _outcome(ctx: WarmContext, p: Prepared, job_id: str) -> AuthorOutcome:
    data = p.data
    reason = None
    if p.status == "partial":
        reason = f"openlibrary: {data['sources']['openlibrary']['error']}"
    elif p.status == "review":
        reason = f"identity confidence {data['author']['confidence']} below review threshold"
        await ctx.reviews.add(
            review_entry(p.author, p.depth, job_id, data["author"], data["sources"]["openlibrary"]["works"])
        )
    return AuthorOutcome(
        p.author["name"],
        p.key,
        p.depth,
        p.status,
        works=len(data["works"]) if p.cached else 0,
        coauthors=coauthors(data) if p.cached else [],
        reason=reason,
        openlibrary_key=data["author"]["openlibrary_key"],
        bibliography=data if p.cached else None,
    )


def _negative(data: dict[str, Any], status: str) -> dict[str, Any]:
    return {
        "author": data["author"],
        "works": [],
        "works_count": 0,
        "complete": False,
        "status": status,
        "sources": data["sources"],
        "calls": data["calls"],
        "fetched_at": data["fetched_at"],
    }


def coauthors(bibliography: dict[str, Any]) -> list[dict[str, Any]]:
    """Everyone who shares a work with the author, with their OpenLibrary key (the next level
    fetches them by key, no identity search)."""
    author = bibliography["author"]
    own = {author["key"], author.get("resolved_key")}
    seen: dict[str, dict[str, Any]] = {}
    for work in bibliography.get("works", []):
        for person in work.get("authors", []):
            is_self = person["key"] in own or (
                author.get("openlibrary_key") and person.get("openlibrary_key") == author["openlibrary_key"]
            )
            if not is_self and person["key"] not in seen:
                seen[person["key"]] = {
                    "name": person["name"],
                    "key": person["key"],
                    "openlibrary_key": person.get("openlibrary_key"),
                }
    return list(seen.values())
