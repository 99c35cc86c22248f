"""Provider tasks: OpenLibrary batches, one task run per batch, which the author tasks depend on.

Thin wrappers over ``bookwarm.warming.shard``; the retry layer and the split-on-failure live there
(a Prefect retry would refetch every author of the batch), so these tasks do not retry.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from bookwarm.providers.openlibrary_batch import KeyWorks, Wanted
from bookwarm.warming import shard
from bookwarm.warming.context import WarmContext


@task(
    name="openlibrary-identities",
    task_run_name="openlibrary-identities/d{depth}/batch-{batch}",
    cache_policy=NO_CACHE,
    retries=0,
)
async def resolve_identities(
    ctx: WarmContext, job_id: str, wanted: list[Wanted], depth: int, batch: int
) -> dict[str, shard.Fetched]:
    """Who each name is at OpenLibrary: by the user's own ISBNs, then by name."""
    return await shard.resolve_identities(ctx, job_id, wanted)


@task(
    name="openlibrary-works",
    task_run_name="openlibrary-works/d{depth}/batch-{batch}",
    cache_policy=NO_CACHE,
    retries=0,
)
async def fetch_works(
    ctx: WarmContext, job_id: str, openlibrary_keys: list[str], depth: int, batch: int
) -> dict[str, KeyWorks]:
    """Every work of a batch of authors, by OpenLibrary key, paged to the end."""
    return await shard.fetch_works(ctx, job_id, openlibrary_keys)
