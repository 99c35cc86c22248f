"""`GET /v1/authors/{name}` (the bibliography) and `GET /v1/authors/{name}/completeness`."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from bookwarm.api.dependencies import Config, Ctx, person
from bookwarm.api.errors import problem
from bookwarm.api.responses import JSON, cached
from bookwarm.cache.reading import AuthorRead, read_author
from bookwarm.settings import Settings

router = APIRouter(prefix="/v1/authors", tags=["authors"])

RETRY_AFTER_S = 300  # a miss is demand: the hourly warm-demand run, or a later read, finds it warmed


@router.get("/{name}", summary="An author's bibliography, as the cache holds it")
async def get_author(name: str, request: Request, ctx: Ctx, config: Config) -> Response:
    """200 with the bibliography (the cache contract's author value); 202 when it is not cached
    (recorded as demand); 404 when OpenLibrary knows nobody by that name; 409 for namesakes."""
    found = await read_author(ctx.cache, person(name))
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
    "/{name}/completeness", summary="Is this bibliography complete, and where do its fields come from"
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


def _not_a_bibliography(found: AuthorRead, config: Settings) -> Response | None:
    """The answers that are not a bibliography: not cached (202), unknown (404), namesakes (409)."""
    value = found.read.value
    if value is None:
        return Response(
            json.dumps(
                {
                    "status": 202,
                    "author": found.name,
                    "key": found.key,
                    "detail": "not cached yet: recorded as demand, warmed by the next warm-demand run",
                    "retry": f"/v1/authors/{quote(found.name)}",
                }
            ),
            status_code=202,
            media_type=JSON,
            headers={
                "Retry-After": str(RETRY_AFTER_S),
                "Cache-Control": "no-store",
                "X-Bookwarm-Tier": "miss",
            },
        )
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
