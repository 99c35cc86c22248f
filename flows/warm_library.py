"""Flow: warm every author of a library export, and their co-authors to ``max_depth``."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow
from prefect.runtime import flow_run
from pydantic import Field

from bookwarm.warming.context import WarmContext
from flows.levels import SHARD_SIZE, warm_levels
from tasks.jobs import finish_job, start_job
from tasks.parse_source import parse_source
from tasks.settings import run_settings

MaxDepth = Annotated[
    int, Field(ge=1, le=3, description="co-author levels: 1 to 3 (library authors are depth 0)")
]


@flow(name="warm-library", log_prints=False)
async def warm_library(
    source: str,
    max_depth: MaxDepth = 2,
    force: bool = False,
    shard_size: int = SHARD_SIZE,
    concurrency: int = 32,
) -> dict[str, Any]:
    """``source``: a file path, an s3://bucket/key object, or base64 CSV text."""
    job_id = str(flow_run.id or "local")
    settings = await run_settings()
    parsed = await parse_source(source, settings)
    authors = [{"name": a["name"], "key": a["key"]} for a in parsed["authors"]]
    label = source if len(source) < 200 else "<base64>"
    async with WarmContext(settings, with_providers=False) as ctx:
        progress = await start_job(
            ctx, job_id, source=label, max_depth=max_depth, authors=len(authors), force=force
        )
        status = "failed"
        try:
            await warm_levels(
                ctx,
                job_id,
                authors,
                max_depth=max_depth,
                force=force,
                shard_size=shard_size,
                concurrency=concurrency,
                progress_artifact_id=str(progress),
            )
            status = "completed"
        finally:
            summary = await finish_job(ctx, job_id, status, progress)
    summary["format"] = parsed["format"]
    summary["rejected_rows"] = len(parsed["rejected"])
    return summary
