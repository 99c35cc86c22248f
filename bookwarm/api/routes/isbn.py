"""`GET /v1/isbn/{isbn}`: the work with that ISBN, its author, and where to read the author."""

from __future__ import annotations

import json
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from bookwarm.api import metrics
from bookwarm.api.dependencies import Config, Ctx, Fetcher, Reader, Wait, isbn13
from bookwarm.api.errors import problem
from bookwarm.api.responses import accepted, cached
from bookwarm.api.routes.authors import PENDING_RETRY_S
from bookwarm.cache.reading import IsbnRead, read_isbn

router = APIRouter(dependencies=[Reader], prefix="/v1/isbn", tags=["isbn"])


@router.get("/{isbn}", summary="The work with this ISBN (ISBN-10 or -13, hyphens allowed) and its author")
async def get_isbn(
    isbn: str, request: Request, ctx: Ctx, config: Config, live: Fetcher, wait: Wait = None
) -> Response:
    """200 with the work and its author; on a miss the book's author is fetched from OpenLibrary
    while the reader waits (its edition, then the author by key, written as a warm writes it);
    404 when OpenLibrary knows no book by that ISBN; 202 past the wait (recorded as demand)."""
    found = await read_isbn(ctx.cache, isbn13(isbn))
    if found.entry is None:
        metrics.DEMAND.labels("isbn").inc()
        fetched = await live.fetch_isbn(found.isbn, config.api.live_wait_s if wait is None else wait)
        metrics.LIVE.labels("joined" if fetched.joined else "started").inc()
        if fetched.unknown:
            metrics.READS.labels("isbn", "miss").inc()
            return problem(404, "OpenLibrary knows no book with this ISBN", isbn13=found.isbn)
        if fetched.outcome is not None:
            entry, _ = await ctx.cache.read_isbn(found.isbn)
            if entry is not None:
                author = entry["author"]
                bibliography = await ctx.cache.lookup_author(author["key"], author["name"])
                found = IsbnRead(found.isbn, entry, "live", bibliography)
    metrics.READS.labels("isbn", found.tier if found.entry is not None else "miss").inc()
    if found.entry is None:
        metrics.ACCEPTED.labels("isbn").inc()
        detail = "not cached yet: recorded as demand, fetched still or by the next warm-demand run"
        return accepted({"isbn13": found.isbn, "detail": detail}, PENDING_RETRY_S)
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
