"""Warm one author from what its shard's OpenLibrary batches found: write both tiers, mark done.

The status comes from OpenLibrary alone (`openlibrary_bibliography`). An author OpenLibrary could
not answer for is never cached with no works: it raises, its task retries (fetching it alone), and
then it is a dead letter. An author this shard did not claim (another run holds it) waits for that
run's result and uses it like a fresh skip; if that run died, it is claimed and fetched alone.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bookwarm import clock
from bookwarm.errors import ProviderUnavailable
from bookwarm.providers.openlibrary_batch import openlibrary_bibliography
from bookwarm.warming.context import WarmContext
from bookwarm.warming.outcome import AuthorOutcome
from bookwarm.warming.review import review_entry
from bookwarm.warming.shard import ClaimKeeper, Fetched, fetch_alone, wanted_for

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
        outcome = await _write(ctx, author, depth, fetched, job_id)
        await keeper.release(key)
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
        known = dict(author)
        if record and record.get("openlibrary_key"):
            known.setdefault("openlibrary_key", record["openlibrary_key"])
        fetched = await fetch_alone(ctx, job_id, wanted_for(known))
        return await _write(ctx, author, depth, fetched, job_id)


async def _fresh_record(ctx: WarmContext, key: str, depth: int) -> dict[str, Any] | None:
    record = await ctx.hot.processed(key)
    return record if record is not None and int(record.get("depth", 99)) <= depth else None


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
    ctx: WarmContext, author: dict[str, Any], depth: int, fetched: Fetched, job_id: str
) -> AuthorOutcome:
    name, key = author["name"], author["key"]
    bibliography = openlibrary_bibliography(name, key, fetched.identity, fetched.works, fetched.error)
    if bibliography.status == "failed":
        # Never an empty cache entry: the task retries it alone, then it is a dead letter.
        reason = bibliography.sources["openlibrary"]["error"] or "OpenLibrary gave no answer"
        raise ProviderUnavailable("openlibrary", f"no bibliography for {name}: {reason}")
    data = bibliography.to_dict()
    # Cached under the key people look up; OpenLibrary's spelling stays in `name` and `resolved_key`.
    data["author"]["resolved_key"] = data["author"]["key"]
    data["author"]["key"] = key
    data["warmed_at"] = data["fetched_at"]  # OpenLibrary's list; enrichment later leaves it as it is
    redis_settings = ctx.settings.redis
    status = STATUS[bibliography.status]
    works = 0
    if status in ("warmed", "partial"):
        works = await ctx.cache.write(data)
        ttl = redis_settings.processed_ttl_s if status == "warmed" else redis_settings.negative_ttl_s
    else:
        # Nobody by that name, or a namesake we cannot tell apart: a short negative entry, never an
        # empty "complete" bibliography, and nothing cached as the author.
        await ctx.hot.write_negative(key, _negative(data, status), redis_settings.negative_ttl_s)
        ttl = redis_settings.negative_ttl_s
    openlibrary_key = data["author"]["openlibrary_key"]
    await ctx.hot.mark_processed(
        key,
        {
            "works_count": works,
            "last_warmed": clock.iso_now(),
            "depth": depth,
            "status": status,
            "openlibrary_key": openlibrary_key if status in ("warmed", "partial") else None,
        },
        ttl,
    )
    reason = None
    if status == "partial":
        reason = f"openlibrary: {data['sources']['openlibrary']['error']}"
    elif status == "review":
        reason = f"identity confidence {data['author']['confidence']} below review threshold"
        await ctx.reviews.add(
            review_entry(author, depth, job_id, data["author"], data["sources"]["openlibrary"]["works"])
        )
    return AuthorOutcome(
        name,
        key,
        depth,
        status,
        works=works,
        coauthors=coauthors(data) if status in ("warmed", "partial") else [],
        reason=reason,
        openlibrary_key=openlibrary_key,
        bibliography=data if status in ("warmed", "partial") else None,
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
