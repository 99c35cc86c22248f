"""Flow: warm a list of authors from OpenLibrary's monthly dumps, without calling its API.

One task run reads the dumps (three streamed passes: bookwarm.dumps.scan), then a task run per
chunk of authors writes them through the warm's own write path. The run's page shows the rows read
and skipped, and a progress artifact of authors written. A re-run writes only the authors no
earlier run wrote from this dump (their processed markers say so), and reads no dump file again:
what a run read is kept under BOOKWARM_HOME/dumps until every author is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from prefect import flow
from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from pydantic import Field

from bookwarm.dumps.load import CHUNK_AUTHORS, ChunkResult
from bookwarm.dumps.plan import DumpPlan
from bookwarm.dumps.progress import DumpProgress, notify
from bookwarm.errors import InputError
from bookwarm.warming.context import WarmContext
from flows.flow_process import prepare_flow_process
from flows.params import PersonNames, Source
from tasks.dump import (
    drop_plan_task,
    drop_spill_task,
    plan_partition_task,
    read_catalogue_task,
    read_dumps_task,
    write_dump_chunk_task,
)
from tasks.parse_source import parse_source
from tasks.refresh import hand_over_task
from tasks.settings import run_settings

# Paths on the machine that runs the flow: absolute, one line, no control characters.
DumpPath = Annotated[
    str, Field(min_length=2, max_length=4096, pattern=r"^/[^\x00-\x1f\x7f]*$", description="an absolute path")
]
ChunkSize = Annotated[int, Field(ge=10, le=10_000, description="authors a write-dump-chunk task run writes")]
CHUNKS_IN_FLIGHT = 2


@flow(name="warm-from-dump", log_prints=False)
async def warm_from_dump(
    paths: Annotated[list[DumpPath], Field(min_length=1, max_length=8)],
    names: PersonNames | None = None,
    authors_file: DumpPath | None = None,
    library: Source | None = None,
    all_authors: bool = False,
    force: bool = False,
    chunk_size: ChunkSize = CHUNK_AUTHORS,
) -> dict[str, Any]:
    """The summary: authors by status, the rows read and skipped, the dump's date (``as_of``).
    ``paths``: the dump files, or a directory holding them; ``names``, ``authors_file`` (one name a
    line) and ``library`` (an export, read as warm-library reads it: its ISBNs settle namesakes):
    the authors to load; ``all_authors``: every author with a work instead. Local paths must be
    under BOOKWARM_SOURCE_ROOTS."""
    job_id = str(flow_run.id or "local")
    logger = get_run_logger()
    prepare_flow_process()
    settings = await run_settings()
    artifact = await acreate_progress_artifact(0.0, key=None, description="authors written from the dump")
    written = ChunkResult()
    async with WarmContext(settings, with_providers=False) as ctx:
        if all_authors:
            if names or authors_file or library:
                raise InputError(
                    "all_authors loads every author: give no names, authors_file or library with it"
                )
            spill = await read_catalogue_task(paths, settings)
            plans: AsyncIterator[DumpPlan] = (
                await plan_partition_task(spill, p) for p in range(spill.partitions)
            )
            parts = spill.partitions
        else:
            library_authors = (await parse_source(library, settings))["authors"] if library else None
            plans = _one(await read_dumps_task(paths, names, authors_file, library_authors, settings))
            parts = 1
        plan = None
        async for plan in plans:
            _log_read(logger, plan)
            await _write_plan(ctx, plan, job_id, force, chunk_size, written, artifact, parts)
        assert plan is not None
        handed_over = not written.failed and await hand_over_task(ctx, plan.as_of[:10])
        if all_authors and not written.failed:
            await drop_spill_task(spill)
        elif not written.failed:
            await drop_plan_task(plan)  # a list load's reading, kept for a re-run after a kill
    for name, why in written.failed[:20]:
        logger.warning("not written (a re-run writes it): %s: %s", name, why)
    if handed_over:
        logger.info("the change feed (refresh) takes over from %s", plan.as_of[:10])
    return {
        "status": "completed" if not written.failed else "partial",
        "authors": written.authors,
        "written": written.counts,
        "failed": len(written.failed),
        "refresh_from": plan.as_of[:10] if handed_over else None,
        **plan.summary(),
    }


async def _one(plan: DumpPlan) -> AsyncIterator[DumpPlan]:
    yield plan


def _log_read(logger: Any, plan: DumpPlan) -> None:
    rows = plan.counts.to_dict()
    logger.info(
        "read the dumps as of %s: %d of %d authors found; skipped %d rows of another shape, %d malformed, "
        "%d works without authors",
        plan.as_of,
        sum(1 for f in plan.fetched.values() if f.identity is not None),
        len(plan.authors),
        rows["wrong_columns"],
        rows["malformed_json"],
        rows["works_without_authors"],
    )


async def _write_plan(
    ctx: WarmContext,
    plan: DumpPlan,
    job_id: str,
    force: bool,
    chunk_size: int,
    written: ChunkResult,
    artifact: Any,
    parts: int,
) -> None:
    """A task run per chunk, ``CHUNKS_IN_FLIGHT`` at once; ``written`` adds up every plan's."""
    total = len(plan.authors)
    done = 0
    gate = asyncio.Semaphore(CHUNKS_IN_FLIGHT)
    parts_before = written.parts_done

    async def one(start: int) -> None:
        nonlocal done
        async with gate:
            result = await write_dump_chunk_task(
                ctx, plan, start, min(start + chunk_size, total), job_id, force
            )
        written.merge(result)
        done += sum(result.counts.values()) + len(result.failed)
        await aupdate_progress_artifact(artifact, 100.0 * (parts_before + done / total) / parts)
        notify(DumpProgress("write", written.authors, written.authors + total - done))

    await asyncio.gather(*(one(start) for start in range(0, total, chunk_size)))
    written.parts_done += 1
