"""Task: warm one author. Its task run's state is the author's status; Failed is a dead letter.

The shard's OpenLibrary batch tasks found its identity and works, so this task only writes them.
A retry (3, backing off) asks OpenLibrary again, for this author alone, only what it did not
answer: after a cache-tier failure it writes what was already fetched. The live context is passed
in, so caching is off (NO_CACHE).
"""

from __future__ import annotations

import os
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import task_run
from prefect.tasks import exponential_backoff

from bookwarm.warming.author import warm_one
from bookwarm.warming.context import WarmContext
from bookwarm.warming.progress import notify
from bookwarm.warming.shard import ClaimKeeper, Fetched

# Retries of failures: 3 as in the original design; the delay doubles.
RETRIES = int(os.environ.get("BOOKWARM_AUTHOR_RETRIES", "3"))
RETRY_DELAY_S = float(os.environ.get("BOOKWARM_AUTHOR_RETRY_DELAY_S", "1"))


@task(
    name="warm-author",
    task_run_name="warm-author/{author[name]}/d{depth}",
    retries=RETRIES,
    retry_delay_seconds=exponential_backoff(backoff_factor=RETRY_DELAY_S) if RETRY_DELAY_S else 0,
    retry_jitter_factor=0.5,
    cache_policy=NO_CACHE,
)
async def warm_author(
    author: dict[str, Any],
    depth: int,
    job_id: str,
    ctx: WarmContext,
    force: bool = False,
    fetched: Fetched | None = None,
    keeper: ClaimKeeper | None = None,
    fresh: dict[str, Any] | None = None,
) -> dict[str, Any]:
    outcome = await warm_one(
        ctx,
        author,
        depth,
        job_id,
        force=force,
        fetched=fetched,
        keeper=keeper,
        fresh=fresh,
        refetch=task_run.run_count > 1,
    )
    emit_event(
        event="bookwarm.author.warmed",
        resource={
            "prefect.resource.id": f"bookwarm.author.{outcome.key}",
            "prefect.resource.name": outcome.name,
        },
        related=[{"prefect.resource.id": f"bookwarm.job.{job_id}", "prefect.resource.role": "job"}],
        payload={
            "status": outcome.status,
            "works": outcome.works,
            "depth": depth,
            "duration_s": outcome.seconds,
            "openlibrary_key": outcome.openlibrary_key,
        },
    )
    if outcome.counted:  # progress shows what the summary counts: each author once
        notify(job_id, outcome)
    return outcome.to_dict()
