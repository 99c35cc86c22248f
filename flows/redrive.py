"""Flow: re-run a job's dead letters (forced), at the depth each failed, continuing its co-author levels."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from bookwarm.warming.context import WarmContext
from flows.flow_process import prepare_flow_process
from flows.job_run import end_unstarted_shards, existing_job, flow_result, run_job
from flows.levels import SHARD_SIZE, warm_levels
from flows.params import Concurrency, JobId
from tasks.prefect_api import resolve_task_runs
from tasks.settings import run_settings


@flow(name="redrive", flow_run_name="redrive/{job_id}", log_prints=False)
async def redrive(job_id: JobId, concurrency: Concurrency = 32) -> Any:
    prepare_flow_process()
    settings = await run_settings()
    async with WarmContext(settings, with_providers=False) as ctx:
        record = await existing_job(ctx, job_id)
        dead = await ctx.jobs.dead_letters(job_id)
        by_depth: dict[int, list[dict[str, str]]] = defaultdict(list)
        for entry in dead:
            await ctx.jobs.remove_dead_letter(job_id, entry["key"])
            by_depth[entry["depth"]].append({"name": entry["name"], "key": entry["key"]})
        await end_unstarted_shards(ctx, job_id, "its job was redriven")
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
        still = {entry["key"] for entry in await ctx.jobs.dead_letters(job_id)}
        summary["redriven"] = len(dead)
        summary["still_failed"] = len(still)
        await _resolve_in_prefect(ctx, job_id, [e["key"] for e in dead if e["key"] not in still])
    return flow_result(summary)


async def _resolve_in_prefect(ctx: WarmContext, job_id: str, warmed: list[str]) -> None:
    """The Failed `dead-letter` task runs of authors this redrive warmed are marked Completed
    (resolved), so the UI's failed runs are the job's dead letters, as Redis holds them."""
    runs = await ctx.jobs.dead_letter_runs(job_id)
    done = [key for key in warmed if key in runs]
    if not done:
        return
    resolved = await resolve_task_runs(
        [runs[key] for key in done], f"resolved: warmed by redrive {flow_run.id or ''}".strip()
    )
    if resolved < len(done):
        get_run_logger().warning(
            "%d of %d dead-letter task runs could not be marked resolved in Prefect",
            len(done) - resolved,
            len(done),
        )
    await ctx.jobs.forget_dead_letter_runs(job_id, done)
