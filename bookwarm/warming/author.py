"""Warm one author: claim, skip if fresh, fetch from the providers, write both tiers, mark done.

Claims are Redis `SET NX EX`: two runs never fetch the same author at once, and a crashed
worker's claim expires. A run that finds an author claimed waits (bounded) for the other run's
result instead of fetching it again, then uses it for co-author discovery like a fresh skip.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bookwarm.warming.context import WarmContext
from bookwarm.warming.jobs import now_iso
from bookwarm.warming.outcome import COUNTER, AuthorOutcome

POLL_S = 0.25


async def warm_one(
    ctx: WarmContext, author: dict[str, str], depth: int, job_id: str, *, force: bool = False
) -> AuthorOutcome:
    started = time.monotonic()
    name, key = author["name"], author["key"]
    outcome = await _skip_if_fresh(ctx, name, key, depth, force)
    token = None
    while outcome is None:
        token = await ctx.hot.claim(key, ctx.claim_ttl_s)
        if token is not None:
            break
        outcome = await _wait_for_other_run(ctx, name, key, depth)
    if outcome is None:
        heartbeat = asyncio.create_task(_keep_claim(ctx, key, token))
        try:
            outcome = await _fetch_and_write(ctx, name, key, depth)
        finally:
            heartbeat.cancel()
            await ctx.hot.release(key, token)
    outcome.seconds = round(time.monotonic() - started, 4)
    await ctx.jobs.incr(
        job_id,
        **{
            COUNTER[outcome.status]: 1,
            "works_cached": outcome.works if outcome.status != "skipped" else 0,
            "provider_calls": sum(outcome.calls.values()),
        },
    )
    return outcome


async def _keep_claim(ctx: WarmContext, key: str, token: str) -> None:
    """Renew the claim while this worker is alive; if it dies, the claim lapses within its TTL."""
    while True:
        await asyncio.sleep(max(0.5, ctx.claim_ttl_s / 3))
        await ctx.hot.extend_claim(key, token, ctx.claim_ttl_s)


async def _skip_if_fresh(
    ctx: WarmContext, name: str, key: str, depth: int, force: bool
) -> AuthorOutcome | None:
    """Skip an author warmed at this depth or shallower within the processed TTL (unless forced)."""
    if force:
        return None
    record = await ctx.hot.processed(key)
    if record is None or int(record.get("depth", 99)) > depth:
        return None
    cached, _ = await ctx.cache.read_author(key)
    coauthors = _coauthors(cached) if cached else []
    return AuthorOutcome(
        name,
        key,
        depth,
        "skipped",
        works=int(record.get("works_count", 0)),
        coauthors=coauthors,
        reason=f"fresh: warmed {record.get('last_warmed')} at depth {record.get('depth')}",
    )


async def _wait_for_other_run(ctx: WarmContext, name: str, key: str, depth: int) -> AuthorOutcome | None:
    """Another run holds the claim: wait until it finishes (its processed marker) or the claim lapses."""
    while await ctx.hot.is_claimed(key):  # renewed while its owner lives, gone within a TTL if it dies
        await asyncio.sleep(POLL_S)
    outcome = await _skip_if_fresh(ctx, name, key, depth, force=False)
    if outcome is not None:
        outcome.reason = "warmed by a concurrent run"
    return outcome  # None: the other run died or warmed it deeper; claim it ourselves


async def _fetch_and_write(ctx: WarmContext, name: str, key: str, depth: int) -> AuthorOutcome:
    assert ctx.providers is not None
    bibliography = await ctx.providers.fetch(name)
    data = bibliography.to_dict()
    # Cached under the key people look up; OpenLibrary's spelling stays in `name` and `resolved_key`.
    data["author"]["resolved_key"] = data["author"]["key"]
    data["author"]["key"] = key
    calls = dict(bibliography.calls)
    seconds = {p: round(s, 4) for p, s in bibliography.latency_s.items()}
    settings = ctx.settings.redis
    status = {"ok": "warmed", "partial": "partial", "review": "review", "unknown": "unknown"}[
        bibliography.status
    ]
    works = 0
    if status in ("warmed", "partial"):
        works = await ctx.cache.write(data)
        ttl = (
            settings.processed_ttl_s if status == "warmed" else settings.negative_ttl_s
        )  # partial: retry sooner
    else:
        # Nobody by that name, or a namesake we cannot tell apart: a short negative entry, never an
        # empty "complete" bibliography, and nothing cached as the author.
        await ctx.hot.write_negative(key, _negative(data, status), settings.negative_ttl_s)
        ttl = settings.negative_ttl_s
    await ctx.hot.mark_processed(
        key, {"works_count": works, "last_warmed": now_iso(), "depth": depth, "status": status}, ttl
    )
    reason = None
    if status == "partial":
        reason = "; ".join(f"{p}: {s['error']}" for p, s in data["sources"].items() if s.get("error"))
    elif status == "review":
        reason = f"identity confidence {data['author']['confidence']} below review threshold"
    return AuthorOutcome(
        name,
        key,
        depth,
        status,
        works=works,
        coauthors=_coauthors(data) if status in ("warmed", "partial") else [],
        calls=calls,
        provider_seconds=seconds,
        reason=reason,
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


def _coauthors(bibliography: dict[str, Any]) -> list[dict[str, str]]:
    author = bibliography["author"]
    own = {author["key"], author.get("resolved_key")}
    seen: dict[str, dict[str, str]] = {}
    for work in bibliography.get("works", []):
        for person in work.get("authors", []):
            is_self = person["key"] in own or (
                author.get("openlibrary_key") and person.get("openlibrary_key") == author["openlibrary_key"]
            )
            if not is_self and person["key"] not in seen:
                seen[person["key"]] = {"name": person["name"], "key": person["key"]}
    return list(seen.values())
