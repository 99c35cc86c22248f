"""Flow: finish a job that was interrupted (its process or the Prefect API lost) or cancelled.

The job's record holds every author it queued and every one it counted, so a resume needs neither
the source nor the old run: from the shallowest depth with work left, authors already counted
only give their co-authors (no provider call), the rest are warmed, and levels go on to the job's
``max_depth``. Dead letters are left to redrive. Counts stay true: nothing is counted twice.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from bookwarm.errors import InputError
from bookwarm.warming.context import WarmContext
from flows.flow_process import prepare_flow_process
from flows.job_run import end_unstarted_shards, existing_job, flow_result, run_job
from flows.levels import SHARD_SIZE, warm_levels
from flows.params import Concurrency, JobId
from tasks.prefect_api import run_has_ended
from tasks.settings import run_settings


@flow(name="resume", flow_run_name="resume/{job_id}", log_prints=False)
async def resume(job_id: JobId, concurrency: Concurrency = 32) -> Any:
    prepare_flow_process()
    settings = await run_settings()
    async with WarmContext(settings, with_providers=False) as ctx:
        record = await existing_job(ctx, job_id)
        if record["status"] == "running" and not await run_has_ended(job_id):
            raise InputError(f"job {job_id} is still running (its heartbeat is fresh); nothing to resume")
        if record["status"] == "completed":
            raise InputError(
                f"job {job_id} is completed; nothing to resume (dead letters: `bookwarm redrive`)"
            )
        queued = await ctx.jobs.queued(job_id)
        done = frozenset(await ctx.jobs.counted(job_id))
        dead = frozenset(d["key"] for d in await ctx.jobs.dead_letters(job_id))
        left = [depth for depth, authors in queued.items() if any(a["key"] not in done for a in authors)]
        # From the shallowest depth with work left; when every queued author is counted, the job
        # stopped between levels: its deepest level, all done, gives the next level's co-authors.
        start = left[0] if left else max(queued, default=0)
        await end_unstarted_shards(ctx, job_id, "its job was resumed")
        await ctx.jobs.resumed(job_id)
        await ctx.jobs.incr(job_id, resumes=1)

        async def warm() -> None:
            if queued:
                await warm_levels(
                    ctx,
                    job_id,
                    queued[start],
                    max_depth=record["max_depth"],
                    force=bool(record.get("force")),
                    shard_size=SHARD_SIZE,
                    concurrency=concurrency,
                    progress_artifact_id=None,
                    start_depth=start,
                    done=done,
                    exclude=dead,
                    queued_field="resume_found",
                )

        summary = await run_job(ctx, job_id, None, warm, run_id=str(flow_run.id or job_id))
    return flow_result(summary)
