"""The API's application: its routers, its error table, gzip, and the one WarmContext a process
opens at start (Redis, both tiers, demand) and closes at exit.

``create_app(settings)`` for tests and embedding; ``from_environment`` is the factory uvicorn's
workers call (``bookwarm api --workers N``), each resolving the same settings from the
environment (and the local services when nothing is configured)."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware

from bookwarm.api import errors
from bookwarm.api.access import Access
from bookwarm.api.limits import RequestLimits
from bookwarm.api.metrics import MetricsMiddleware
from bookwarm.api.routes import authors, docs, health, isbn, jobs, metrics, search
from bookwarm.runtime import load_settings
from bookwarm.settings import Settings
from bookwarm.warming.context import WarmContext
from bookwarm.warming.live import LiveFetcher

GZIP_ABOVE_BYTES = 1024
READ_RIDE_OUT_S = 1.0


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or load_settings(start_services=False)
        # A reader is answered at once, 503 if need be, rather than held while Redis is away for as
        # long as a warm rides it out (BOOKWARM_REDIS_RIDE_OUT_S, 9.5 s).
        redis = dataclasses.replace(
            resolved.redis, ride_out_s=min(resolved.redis.ride_out_s, READ_RIDE_OUT_S)
        )
        resolved = dataclasses.replace(resolved, redis=redis)
        app.state.settings = resolved
        app.state.access = Access(resolved.api)
        async with WarmContext(resolved, ensure_bucket=False, reader=True, core_only=True) as ctx:
            app.state.ctx = ctx
            app.state.live = LiveFetcher(ctx)
            # What start-up made (FastAPI's routes and schemas, pydantic's validators, the imports)
            # lives as long as the process: out of the collector's generations, a full collection no
            # longer walks it between requests. Measured with `make bench-api` at 64 connections:
            # p99 73 -> 17 ms, 5,490 -> 6,462 requests/s (docs/decisions.md, session 18).
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                await app.state.live.close()

    app = FastAPI(
        title="bookwarm",
        summary="Book metadata from bookwarm's cache: authors' bibliographies, ISBNs, titles.",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # /docs is rendered here, offline (routes/docs.py); Swagger UI at /docs/swagger
        redoc_url=None,
    )
    errors.install(app)
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_ABOVE_BYTES)
    app.add_middleware(RequestLimits)
    app.add_middleware(MetricsMiddleware)  # outermost: every request counted, refused ones too
    for module in (authors, isbn, search, jobs, health, metrics, docs):
        app.include_router(module.router)
    return app


def from_environment() -> FastAPI:
    return create_app()
