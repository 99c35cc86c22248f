"""`GET /health`: Redis, the object store and Prefect's API, each checked within a second or two.

503 names what failed when Redis or the object store does (reads need them). Prefect's API is
reported but does not make the answer 503: reads never need it (only the triggers do), and a load
balancer must not pull every API process out because the orchestrator is down."""

from __future__ import annotations

import asyncio
import os

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from bookwarm.api.dependencies import Ctx
from bookwarm.deadline import within
from bookwarm.errors import CacheError
from bookwarm.tls import tls_context

router = APIRouter(tags=["operations"])

CHECK_TIMEOUT_S = 2.0


@router.get("/health", summary="Redis, the object store and Prefect's API: 200, or 503 naming what failed")
async def health(ctx: Ctx) -> JSONResponse:
    redis, store, prefect = await asyncio.gather(_check(ctx.hot.ping()), _check(ctx.cold.ping()), _prefect())
    checks = {"redis": redis, "object_store": store, "prefect": prefect}
    failed = [name for name in ("redis", "object_store") if checks[name] != "ok"]
    status = "unavailable" if failed else ("degraded" if prefect == "down" else "ok")
    return JSONResponse(
        {"status": status, "checks": checks, **({"failed": failed} if failed else {})},
        status_code=503 if failed else 200,
        headers={"Cache-Control": "no-store"},
    )


async def _check(call: object) -> str:
    try:
        await within(call, CHECK_TIMEOUT_S)  # type: ignore[arg-type]
    except (CacheError, TimeoutError):
        return "down"
    return "ok"


async def _prefect() -> str:
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        return "not configured"
    try:
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S, verify=tls_context()) as client:
            return "ok" if (await client.get(f"{url.rstrip('/')}/health")).status_code == 200 else "down"
    except httpx.HTTPError:
        return "down"
