"""Flow: re-run a job's dead letters (forced), at the depth each failed, continuing its co-author levels."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from bookwarm.warming.context import WarmContext
from flows.job_run import existing_job, flow_result, run_job
from flows.levels import SHARD_SIZE, warm_levels
from flows.params import Concurrency, JobId
from tasks.settings import run_settings


@flow(name="redrive", flow_run_name="redrive/{job_id}", log_prints=False)
async def redrive(job_id: JobId, concurrency: Concurrency = 32) -> Any:
    settings = await run_settings()
    async with WarmContext(settings, with_providers=False) as ctx:
        record = await existing_job(ctx, job_id)
        dead = await ctx.jobs.dead_letters(job_id)
        by_depth: dict[int, list[dict[str, str]]] = defaultdict(list)
        for entry in dead:
            await ctx.jobs.remove_dead_letter(job_id, entry["key"])
            by_depth[entry["depth"]].append({"name": entry["name"], "key": entry["key"]})
        await ctx.jobs.resumed(job_id)

        async def warm() -> None:
            for depth in sorted(by_depth):
                await warm_levels(
                    ctx,
                    job_id,
                    by_depth[depth],
                    max_depth=record["max_depth"],
                    force=True,
                    shard_size=SHARD_SIZE,
                    concurrency=concurrency,
                    progress_artifact_id=None,
                    start_depth=depth,
                    queued_field="redrive_found",
                )

        summary = await run_job(ctx, job_id, None, warm, run_id=str(flow_run.id or job_id))
        summary["redriven"] = len(dead)
        summary["still_failed"] = len(await ctx.jobs.dead_letters(job_id))
    return flow_result(summary)
