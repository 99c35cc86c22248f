"""Flow: re-warm the cached authors OpenLibrary changed, from its change feed (hourly by default).

With it, freshness follows OpenLibrary: an author's new work appears within the hour after
OpenLibrary indexes it, and the 90-day processed marker is only a safety net for what the feed
cannot say (bookwarm.warming.refresh).
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from bookwarm.warming.context import WarmContext
from flows.flow_process import prepare_flow_process
from flows.job_run import flow_result, warm_new_job
from flows.params import Concurrency, UtcDay
from tasks.refresh import advance_checkpoint_task, plan_refresh_task
from tasks.settings import run_settings


@flow(name="refresh", log_prints=False)
async def refresh(since: UtcDay | None = None, concurrency: Concurrency = 32) -> Any:
    """A summary dict with ``refresh`` (days read, changesets, merges, ignored, feed error), or a
    Cancelled state holding it. ``since``: read from that UTC day instead of the checkpoint."""
    job_id = str(flow_run.id or "local")
    prepare_flow_process()
    settings = await run_settings()
    logger = get_run_logger()
    async with WarmContext(settings) as ctx:
        planned = await plan_refresh_task(ctx, since)
        plan, authors = planned["plan"], planned["authors"]
        logger.info(
            "change feed from %s: %d changesets, %d merges, %d cached authors changed, %d not held",
            plan["start"],
            plan["changesets"],
            plan["merges"],
            len(authors),
            plan["ignored"],
        )
        for window in plan["truncated"]:
            logger.warning(
                "change feed window %s holds more than 11,000 changesets: the rest is unread", window
            )
        if plan["feed_error"]:
            logger.warning("change feed failed at %s; that day is read again next run", plan["feed_error"])
        summary = await warm_new_job(
            ctx, job_id, "refresh", authors, max_depth=0, force=False, concurrency=concurrency
        )
        if summary["status"] == "completed":
            await advance_checkpoint_task(ctx, plan)
    summary["refresh"] = plan
    return flow_result(summary)
