"""Task: warm one batch of a shard's authors (`bookwarm.warming.batch`), one task run per batch.

Prefect tracks batches, not authors: a task run and its events cost the server more than writing
an author does. The batch's authors are retried one by one inside (a Prefect retry would write the
whole batch again); each that still fails becomes a `dead-letter` task run of its own (tasks.jobs).
One `bookwarm.batch.warmed` event per batch says what it did. The live context is passed in, so
caching is off (NO_CACHE).
"""

from __future__ import annotations

import asyncio

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from bookwarm.warming.batch import BatchResult, Item, warm_batch
from bookwarm.warming.context import WarmContext
from bookwarm.warming.shard import ClaimKeeper

FAILED_NAMES_IN_EVENT = 20  # the event names the batch's dead letters up to this many


@task(
    name="warm-batch",
    task_run_name="warm-batch/d{depth}/shard-{shard}/batch-{batch}",
    cache_policy=NO_CACHE,
    retries=0,
)
async def warm_authors_batch(
    ctx: WarmContext,
    items: list[Item],
    depth: int,
    job_id: str,
    shard: int,
    batch: int,
    force: bool,
    keeper: ClaimKeeper,
    gate: asyncio.Semaphore,
) -> BatchResult:
    result = await warm_batch(ctx, items, depth, job_id, force=force, keeper=keeper, gate=gate)
    emit_event(
        event="bookwarm.batch.warmed",
        resource={
            "prefect.resource.id": f"bookwarm.batch.{job_id}.d{depth}.s{shard}.b{batch}",
            "prefect.resource.name": f"d{depth}/shard-{shard}/batch-{batch}",
        },
        related=[{"prefect.resource.id": f"bookwarm.job.{job_id}", "prefect.resource.role": "job"}],
        payload={
            "depth": depth,
            "shard": shard,
            "batch": batch,
            "authors": len(items),
            "statuses": result.counts(),
            "works": sum(o.works for o in result.outcomes if o.status != "skipped"),
            "not_started": len(result.not_started),
            "failed": [f.author["name"] for f in result.failures[:FAILED_NAMES_IN_EVENT]],
            "duration_s": result.seconds,
        },
    )
    return result
