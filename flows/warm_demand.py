"""Flow: warm what readers asked for and missed, or found stale (hourly by default).

The read path records demand (bookwarm.cache.demand); this ranks it, keeps what is not fresh and
fits the run's bounds (bookwarm.warming.demand_plan), and warms it as one job through the usual
levels: batched, claimed, budgeted, with its dead letters and resume like any other job.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from bookwarm.warming.context import WarmContext
from flows.flow_process import prepare_flow_process
from flows.job_run import flow_result, warm_new_job
from flows.params import Concurrency, DemandMaxAuthors, NamedMaxDepth
from tasks.demand import plan_demand_task, record_spent_task
from tasks.settings import run_settings


@flow(name="warm-demand", log_prints=False)
async def warm_demand(
    max_authors: DemandMaxAuthors | None = None,
    max_depth: NamedMaxDepth = 0,
    concurrency: Concurrency = 32,
) -> Any:
    """A summary dict (with ``demand``: what was asked, fresh, skipped, over budget), or a
    Cancelled state holding it. ``max_authors`` defaults to BOOKWARM_DEMAND_MAX_AUTHORS."""
    job_id = str(flow_run.id or "local")
    prepare_flow_process()
    settings = await run_settings()
    limit = max_authors or settings.orchestration.demand_max_authors
    async with WarmContext(settings) as ctx:
        planned = await plan_demand_task(ctx, limit)
        plan, authors = planned["plan"], planned["authors"]
        get_run_logger().info(
            "demand: %d asked for, %d fresh, %d negative, %d blocked, %d over budget; warming %d "
            "(%d OpenLibrary calls left today for warm-demand)",
            plan["asked"],
            plan["fresh"],
            plan["negative"],
            plan["blocked"],
            plan["over_budget"],
            len(authors),
            plan["calls_left"],
        )
        summary = await warm_new_job(
            ctx, job_id, "demand", authors, max_depth=max_depth, force=False, concurrency=concurrency
        )
        await record_spent_task(ctx, plan["calls"] + int(summary.get("provider_calls", 0)))
    summary["demand"] = plan
    return flow_result(summary)
