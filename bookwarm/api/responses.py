"""Cached JSON as it is stored, sent on without decoding it, with what says where it came from and
how old it is: ``X-Bookwarm-Tier`` (hot, cold, live), ``X-Bookwarm-Age`` (seconds since OpenLibrary's
list was fetched), ``X-Bookwarm-Stale``, a strong ``ETag`` over the bytes (``If-None-Match`` gives
304), and a ``Cache-Control`` from the TTLs: fresh for what is left of the soft TTL (at most the hot
TTL), stale answers not to be kept, negative ones for their own TTL."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from fastapi import Request, Response

from bookwarm.cache.tiered import warmed_at
from bookwarm.settings import Settings

JSON = "application/json"


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def not_modified(request: Request, etag: str) -> bool:
    asked = request.headers.get("if-none-match")
    if not asked:
        return False
    tags = {t.strip().removeprefix("W/") for t in asked.split(",")}
    return etag in tags or "*" in tags


def cached(
    request: Request,
    body: bytes,
    settings: Settings,
    *,
    tier: str,
    bibliography: dict[str, Any] | None,
    stale: bool,
    status_code: int = 200,
    negative: bool = False,
) -> Response:
    headers = {"X-Bookwarm-Tier": tier, "X-Bookwarm-Stale": "true" if stale else "false"}
    fetched = warmed_at(bibliography) if bibliography else None
    age = max(0, int(time.time() - fetched)) if fetched is not None else None
    if age is not None:
        headers["X-Bookwarm-Age"] = str(age)
    redis = settings.redis
    if negative:
        headers["Cache-Control"] = f"public, max-age={redis.negative_ttl_s}"
    elif stale:
        headers["Cache-Control"] = "public, max-age=0, must-revalidate"
    else:
        left = redis.soft_ttl_s - (age or 0)
        headers["Cache-Control"] = f"public, max-age={max(0, min(redis.hot_ttl_s, left))}"
    headers["ETag"] = etag_of(body)
    if status_code == 200 and not_modified(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return Response(body, status_code=status_code, media_type=JSON, headers=headers)


def accepted(body: dict[str, Any], retry_after_s: int) -> Response:
    """202: not cached yet (recorded as demand by the read); ask again after ``retry_after_s``."""
    return Response(
        json.dumps({"status": 202, **body}),
        status_code=202,
        media_type=JSON,
        headers={"Retry-After": str(retry_after_s), "Cache-Control": "no-store", "X-Bookwarm-Tier": "miss"},
    )
