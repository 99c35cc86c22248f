"""`GET /v1/authors/{name}` (the bibliography) and `GET /v1/authors/{name}/completeness`."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from bookwarm.api import metrics
from bookwarm.api.dependencies import Config, Ctx, Reader, Wait, person
from bookwarm.api.errors import problem
from bookwarm.api.responses import accepted, cached
from bookwarm.cache.reading import AuthorRead, read_author
from bookwarm.cache.tiered import Read
from bookwarm.settings import Settings
from bookwarm.warming.context import WarmContext
from bookwarm.warming.live import LiveFetcher

router = APIRouter(prefix="/v1/authors", tags=["authors"])

RETRY_AFTER_S = 300  # a miss is demand: the hourly warm-demand run, or a later read, finds it warmed
PENDING_RETRY_S = 5  # a live fetch still going: it lands in the cache within seconds


@router.get("/{name}", summary="An author's bibliography, from the cache or, within a deadline, OpenLibrary")
async def get_author(name: str, request: Request, wait: Wait = None) -> Response:
    """200 with the bibliography (the cache contract's author value); on a miss it is fetched from
    OpenLibrary while the reader waits (the wait parameter), written to both tiers as a warm writes it; past
    the wait, or with the readers' share of OpenLibrary spent, 202 (recorded as demand); 404 when
    OpenLibrary knows nobody by that name; 409 for namesakes."""
    # The hot path of the whole API: what the other routes take as dependencies it reads from the
    # app's state itself (FastAPI's dependency solving cost 18 % of a request here). A comment, not
    # the docstring: the docstring is the route's description on /docs, read by an app's developer.
    state = request.app.state
    state.access.check(request, write=False)
    ctx: WarmContext = state.ctx
    config: Settings = state.settings
    live: LiveFetcher = state.live
    found = await read_author(ctx.cache, person(name))
    if found.read.value is None or found.read.stale:
        metrics.DEMAND.labels("author").inc()
    if found.read.value is None:
        found, why = await _fetch_live(ctx, live, found, config.api.live_wait_s if wait is None else wait)
        if found.read.value is None:
            metrics.READS.labels("author", "miss").inc()
            return _accepted(found, why)
    metrics.READS.labels("author", found.read.tier).inc()
    if found.read.stale:
        metrics.STALE.labels("author").inc()
    refused = _not_a_bibliography(found, config)
    if refused is not None:
        return refused
    assert found.read.raw is not None
    return cached(
        request,
        found.read.raw,
        config,
        tier=found.read.tier,
        bibliography=found.read.value,
        stale=found.read.stale,
    )


@router.get(
    "/{name}/completeness",
    dependencies=[Reader],
    summary="Is this bibliography complete, and where do its fields come from",
)
async def get_completeness(name: str, request: Request, ctx: Ctx, config: Config) -> Response:
    found = await read_author(ctx.cache, person(name))
    refused = _not_a_bibliography(found, config)
    if refused is not None:
        return refused
    value = found.read.value
    assert value is not None
    fields: dict[str, Counter[str]] = {}
    for work in value.get("works", []):
        for field, provider in (work.get("sources") or {}).items():
            fields.setdefault(field, Counter())[provider] += 1
    body = {
        "author": value["author"]["name"],
        "key": found.key,
        "status": value["status"],
        "complete": value["complete"],
        "works_count": value["works_count"],
        "sources": {field: dict(counts) for field, counts in sorted(fields.items())},
        "warmed_at": value.get("warmed_at") or value.get("fetched_at"),
        "stale": found.read.stale,
        "tier": found.read.tier,
    }
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return cached(request, raw, config, tier=found.read.tier, bibliography=value, stale=found.read.stale)


async def _fetch_live(
    ctx: WarmContext, live: LiveFetcher, found: AuthorRead, wait_s: float
) -> tuple[AuthorRead, str]:
    """The author fetched from OpenLibrary within ``wait_s`` and read back (tier ``live``), or the
    miss as it was with why it stays one."""
    fetched = await live.fetch(found.name, found.key, wait_s)
    metrics.LIVE.labels("joined" if fetched.joined else "started").inc()
    if fetched.outcome is None:
        return (
            found,
            fetched.failed or f"OpenLibrary did not answer within {wait_s:g} s; it is still being fetched",
        )
    raw, _ = await ctx.cache.read_author_raw(found.key)
    if raw is None:
        return found, "fetched, but not cached (its write failed)"
    value = json.loads(raw)
    return AuthorRead(found.name, found.key, Read(value, "live", False, raw)), ""


def _accepted(found: AuthorRead, why: str) -> Response:
    """202: not cached yet; recorded as demand (the read did), fetched still, or by the next warm."""
    pending = "still being fetched" in why
    metrics.ACCEPTED.labels("author").inc()
    body = {
        "author": found.name,
        "key": found.key,
        "detail": f"not cached yet ({why}): recorded as demand",
        "retry": f"/v1/authors/{quote(found.name)}",
    }
    return accepted(body, PENDING_RETRY_S if pending else RETRY_AFTER_S)


def _not_a_bibliography(found: AuthorRead, config: Settings) -> Response | None:
    """The answers that are not a bibliography: not cached (202), unknown (404), namesakes (409)."""
    value = found.read.value
    if value is None:
        return _accepted(found, "not in either tier")
    headers = {
        "X-Bookwarm-Tier": found.read.tier,
        "Cache-Control": f"public, max-age={config.redis.negative_ttl_s}",
    }
    if value.get("status") == "unknown":
        return problem(
            404,
            "OpenLibrary knows nobody by that name",
            headers,
            author=found.name,
            key=found.key,
            checked_at=value.get("fetched_at"),
        )
    if value.get("status") == "review":
        candidates: list[dict[str, Any]] = value["author"].get("alternates", [])
        return problem(
            409,
            "several people share this name; an operator picks one (`bookwarm review`)",
            headers,
            author=found.name,
            key=found.key,
            candidates=candidates,
        )
    return None
