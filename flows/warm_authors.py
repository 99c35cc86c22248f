"""Subflow: warm one shard of authors at one depth, one task per author, and return the co-authors found.

The unit Prefect schedules and a deployment can run on another machine. Authors are awaited
directly with asyncio.gather under a semaphore (measured 2-12x faster than .map for async tasks),
all sharing one WarmContext created for this subflow's event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prefect import flow

from bookwarm.warming.context import WarmContext
from flows.params import Concurrency
from tasks.jobs import record_dead_letter, update_progress
from tasks.settings import run_settings
from tasks.warm_author import warm_author


@flow(name="warm-authors", flow_run_name="warm-authors/d{depth}/shard-{shard}", log_prints=False)
async def warm_authors(
    authors: list[dict[str, str]],
    depth: int,
    job_id: str,
    force: bool = False,
    concurrency: Concurrency = 32,
    shard: int = 0,
    progress_artifact_id: str | None = None,
) -> list[dict[str, str]]:
    settings = await run_settings()
    gate = asyncio.Semaphore(concurrency)
    last_update = [0.0]
    async with WarmContext(settings) as ctx:

        async def one(author: dict[str, str]) -> dict[str, Any] | None:
            async with gate:
                state = await warm_author(author, depth, job_id, ctx, force, return_state=True)
                if state.is_failed():
                    await record_dead_letter(ctx, job_id, author, depth, state.message or "failed")
                    result = None
                else:
                    result = await state.aresult()
            if progress_artifact_id and time.monotonic() - last_update[0] > 1.0:
                last_update[0] = time.monotonic()
                await update_progress(ctx, job_id, progress_artifact_id)
            return result

        outcomes = await asyncio.gather(*(one(a) for a in authors))
    discovered: dict[str, dict[str, str]] = {}
    for outcome in outcomes:
        for person in (outcome or {}).get("coauthors", []):
            discovered.setdefault(person["key"], person)
    return list(discovered.values())
