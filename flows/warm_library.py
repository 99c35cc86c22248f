"""Flow: warm every author of a library export, and their co-authors to ``max_depth``."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from bookwarm.warming.context import WarmContext
from flows.enrich import hand_off_enrichment
from flows.flow_process import prepare_flow_process
from flows.job_run import flow_result, warm_new_job
from flows.levels import SHARD_SIZE
from flows.params import Concurrency, MaxDepth, ShardSize, Source
from tasks.parse_source import parse_source
from tasks.settings import run_settings


@flow(name="warm-library", log_prints=False)
async def warm_library(
    source: Source,
    max_depth: MaxDepth = 2,
    force: bool = False,
    shard_size: ShardSize = SHARD_SIZE,
    concurrency: Concurrency = 32,
) -> Any:
    """A summary dict, or a Cancelled state holding it. ``source`` is checked by the source policy (bookwarm.sources) before anything is read."""
    job_id = str(flow_run.id or "local")
    prepare_flow_process()
    settings = await run_settings()
    parsed = await parse_source(source, settings)
    authors = [
        {"name": a["name"], "key": a["key"], "isbns": a["isbns"], "titles": a["titles"]}
        for a in parsed["authors"]
    ]
    get_run_logger().info(
        "parsed %s: format %s, %d rows, %d authors, %d rows rejected",
        parsed["source"],
        parsed["format"],
        parsed["rows"],
        len(authors),
        len(parsed["rejected"]),
    )
    async with WarmContext(settings, with_providers=False) as ctx:
        summary = await warm_new_job(
            ctx,
            job_id,
            parsed["source"],
            authors,
            max_depth=max_depth,
            force=force,
            shard_size=shard_size,
            concurrency=concurrency,
        )
    if summary["status"] == "cancelled":
        return flow_result(summary)
    summary["enrich_run"] = await hand_off_enrichment(job_id, summary)
    summary["format"] = parsed["format"]
    summary["rejected_rows"] = len(parsed["rejected"])
    return summary
