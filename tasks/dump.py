"""Tasks of a dump load: read the dumps for the wanted authors (one task run for every pass), then
write them a chunk at a time (a task run per chunk of authors, never one per author)."""

from __future__ import annotations

import asyncio
import functools
import shutil
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from bookwarm.dumps.catalogue import CatalogueSpill
from bookwarm.dumps.load import ChunkResult, write_chunk
from bookwarm.dumps.plan import DumpPlan, drop_plan, partition_plan, plan_catalogue, plan_dump_load
from bookwarm.services.local import default_home
from bookwarm.settings import Settings
from bookwarm.sources import SourcePolicy
from bookwarm.warming.context import WarmContext


@task(name="read-dumps", cache_policy=NO_CACHE)
async def read_dumps_task(
    paths: list[str],
    names: list[str] | None,
    authors_file: str | None,
    library_authors: list[dict[str, Any]] | None,
    settings: Settings,
) -> DumpPlan:
    """Every pass over the dump files, off the event loop (polars and JSON parsing hold the CPU)."""
    return await asyncio.to_thread(
        functools.partial(
            plan_dump_load,
            paths,
            names=names,
            authors_file=authors_file,
            library_authors=library_authors,
            max_authors=settings.ingest.max_job_authors,
            policy=SourcePolicy.from_settings(settings),
            work_dir=default_home() / "dumps",
        )
    )


@task(name="drop-dump-plan", cache_policy=NO_CACHE)
async def drop_plan_task(plan: DumpPlan) -> None:
    """Every author was written: what the list load read is not needed any more."""
    await asyncio.to_thread(drop_plan, plan, default_home() / "dumps")


@task(name="write-dump-chunk", cache_policy=NO_CACHE)
async def write_dump_chunk_task(
    ctx: WarmContext, plan: DumpPlan, start: int, stop: int, job_id: str, force: bool
) -> ChunkResult:
    return await write_chunk(
        ctx, plan.authors[start:stop], plan.fetched, dump_as_of=plan.as_of, job_id=job_id, force=force
    )


@task(name="read-dump-catalogue", cache_policy=NO_CACHE)
async def read_catalogue_task(paths: list[str], settings: Settings) -> CatalogueSpill:
    """Every author with a work, spilled to disk by partition (reused after a kill)."""
    work_dir = default_home() / "dumps"
    return await asyncio.to_thread(
        functools.partial(
            plan_catalogue, paths, policy=SourcePolicy.from_settings(settings), work_dir=work_dir
        )
    )


@task(name="plan-dump-partition", cache_policy=NO_CACHE)
async def plan_partition_task(spill: CatalogueSpill, partition: int) -> DumpPlan:
    return await asyncio.to_thread(partition_plan, spill, partition)


@task(name="drop-dump-spill", cache_policy=NO_CACHE)
async def drop_spill_task(spill: CatalogueSpill) -> None:
    """Everything was written: the spilled catalogue is not needed any more."""
    await asyncio.to_thread(shutil.rmtree, spill.directory, True)
