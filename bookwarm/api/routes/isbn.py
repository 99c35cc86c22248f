"""`GET /v1/isbn/{isbn}`: the work with that ISBN, its author, and where to read the author."""

from __future__ import annotations

import json
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from bookwarm.api import metrics
from bookwarm.api.dependencies import Config, Ctx, Reader, isbn13
from bookwarm.api.responses import JSON, cached
from bookwarm.cache.reading import read_isbn

router = APIRouter(dependencies=[Reader], prefix="/v1/isbn", tags=["isbn"])


@router.get("/{isbn}", summary="The work with this ISBN (ISBN-10 or -13, hyphens allowed) and its author")
async def get_isbn(isbn: str, request: Request, ctx: Ctx, config: Config) -> Response:
    found = await read_isbn(ctx.cache, isbn13(isbn))
    metrics.READS.labels("isbn", found.tier if found.entry is not None else "miss").inc()
    if found.entry is None:
        metrics.DEMAND.labels("isbn").inc()
        metrics.ACCEPTED.labels("isbn").inc()
        return Response(
            json.dumps(
                {
                    "status": 202,
                    "isbn13": found.isbn,
                    "detail": "not cached yet: recorded as demand, warmed by the next warm-demand run",
                }
            ),
            status_code=202,
            media_type=JSON,
            headers={"Retry-After": "300", "Cache-Control": "no-store", "X-Bookwarm-Tier": "miss"},
        )
    author = found.entry["author"]
    body = {
        "isbn13": found.entry["isbn13"],
        "work": found.entry["work"],
        "author": {**author, "url": f"/v1/authors/{quote(author['name'], safe='')}"},
    }
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    read = found.author
    return cached(
        request,
        raw,
        config,
        tier=found.tier,
        bibliography=read.value if read else None,
        stale=bool(read and read.stale),
    )
