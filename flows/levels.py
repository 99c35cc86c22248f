"""Level-by-level recursion over co-authors, shared by the library, popular-authors and redrive flows.

Depth 0 is the given authors; each level's co-authors not seen before become the next level,
while depth < max_depth. Each level runs as shard subflows (the unit of distribution).
"""

from __future__ import annotations

import asyncio

from bookwarm.warming.context import WarmContext
from flows.warm_authors import warm_authors

MAX_PARALLEL_SHARDS = 4  # subflows at once: the SQLite API locks up past a few dozen
# Authors per shard subflow. Each subflow's start creates a flow run on the Prefect server; on the
# embedded SQLite server, busy writing the running shards' task-run events, that waited 1-30 s here,
# during which the run stood nearly idle (1,000 authors: 40/s in shards of 500, 42-48/s in one).
SHARD_SIZE = 1000


async def warm_levels(
    ctx: WarmContext,
    job_id: str,
    authors: list[dict[str, str]],
    *,
    max_depth: int,
    force: bool,
    shard_size: int,
    concurrency: int,
    progress_artifact_id: str | None,
    start_depth: int = 0,
    queued_field: str = "authors_queued",
) -> None:
    """``queued_field``: where newly found co-authors are counted (a redrive counts them apart, so
    the job's ``authors_queued`` stays what the job itself queued)."""
    seen = {a["key"] for a in authors}
    frontier = authors
    gate = asyncio.Semaphore(MAX_PARALLEL_SHARDS)
    for depth in range(start_depth, max_depth + 1):
        if not frontier:
            return
        shards = [frontier[i : i + shard_size] for i in range(0, len(frontier), shard_size)]

        async def run(index: int, shard: list[dict[str, str]], depth: int = depth) -> list[dict[str, str]]:
            async with gate:
                return await warm_authors(
                    shard,
                    depth,
                    job_id,
                    force=force,
                    concurrency=concurrency,
                    shard=index,
                    progress_artifact_id=progress_artifact_id,
                )

        found = await asyncio.gather(*(run(i, s) for i, s in enumerate(shards)))
        if depth == max_depth:
            return
        frontier = []
        for person in (p for group in found for p in group):
            if person["key"] not in seen:
                seen.add(person["key"])
                frontier.append(person)
        if frontier:
            await ctx.jobs.incr(job_id, **{queued_field: len(frontier)})
