"""Provider task: enrich a chunk of warmed authors from Google Books or ISBNdb, within budget."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from bookwarm.warming.context import WarmContext
from bookwarm.warming.enrichment import Pending, enrich_chunk


@task(
    name="enrich", task_run_name="enrich-{provider}/d{depth}/chunk-{chunk}", cache_policy=NO_CACHE, retries=0
)
async def enrich_authors(
    ctx: WarmContext,
    provider: str,
    entries: list[Pending],
    depth: int,
    chunk: int,
    stop: asyncio.Event | None = None,
) -> dict[str, Any]:
    """{done, filled, calls, stopped}: a spent quota stops the chunk; the rest stays pending, as
    does what ``stop`` (the shard's bibliographies are done) leaves."""
    return asdict(await enrich_chunk(ctx, provider, entries, stop))
