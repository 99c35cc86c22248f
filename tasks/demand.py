"""Tasks: what a warm-demand run warms (ranked, filtered, bounded), and what it spent."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from bookwarm.warming.context import WarmContext
from bookwarm.warming.demand_plan import plan_demand, record_spent


@task(name="plan-demand", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
async def plan_demand_task(ctx: WarmContext, max_authors: int) -> dict[str, Any]:
    """{"authors": [...], "plan": counts}: one task run for the whole ranking (a few Redis round
    trips and one OpenLibrary call per 50 missed ISBNs)."""
    openlibrary = ctx.providers.ol_batches if ctx.providers is not None else None
    plan = await plan_demand(ctx, openlibrary, max_authors)
    return {"authors": plan.authors, "plan": plan.to_dict()}


@task(name="top-demand", cache_policy=NO_CACHE)
async def top_demand(ctx: WarmContext, limit: int) -> list[dict[str, str]]:
    """The most-missed authors (junk dropped), as the popular list takes them."""
    return [{"name": a.name, "key": a.member} for a in await ctx.demand.top_authors(limit)]


@task(name="record-demand-spend", cache_policy=NO_CACHE)
async def record_spent_task(ctx: WarmContext, calls: int) -> None:
    await record_spent(ctx, calls)
