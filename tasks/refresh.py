"""Tasks: what changed at OpenLibrary for the authors bookwarm holds, and the checkpoint after."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from bookwarm.providers.openlibrary_changes import ChangeFeed
from bookwarm.warming.context import WarmContext
from bookwarm.warming.refresh import advance_checkpoint, hand_over_from_dump, plan_refresh, today_utc


@task(name="read-change-feed", cache_policy=NO_CACHE)
async def plan_refresh_task(ctx: WarmContext, since: str | None) -> dict[str, Any]:
    """{"authors": [...], "plan": counts}: the feed's days since the checkpoint (one call per 1,000
    changesets) and one batched search per 200 new works or editions."""
    assert ctx.providers is not None
    feed = ChangeFeed(ctx.providers.http["openlibrary"])
    plan = await plan_refresh(
        ctx, feed, ctx.providers.ol_batches, date.fromisoformat(since) if since else None, today_utc()
    )
    return {"authors": plan.authors, "plan": plan.to_dict()}


@task(name="advance-refresh-checkpoint", cache_policy=NO_CACHE)
async def advance_checkpoint_task(ctx: WarmContext, plan: dict[str, Any]) -> None:
    await advance_checkpoint(ctx, plan)


@task(name="hand-over-to-refresh", cache_policy=NO_CACHE)
async def hand_over_task(ctx: WarmContext, newest_day: str) -> bool:
    """After a dump load: the change feed starts at the dump's newest day (unless it already runs)."""
    return await hand_over_from_dump(ctx, date.fromisoformat(newest_day))
