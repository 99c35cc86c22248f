"""How a job's warming runs and ends, shared by every flow that warms for a job.

Under the job's heartbeat (a killed process reads as interrupted) and its watchdog (a cancel, or
a Prefect API lost beyond the grace, stops it), then the record says how it ended:
- completed, or cancelled: the summary artifacts are written and the summary returned;
- interrupted: the record is written straight to Redis and JobStopped is raised; when the API is
  gone, listeners (the CLI) are told first, so they need not wait on it;
- any other end: the record says cancelled (a runner's cancel delivered as a signal), interrupted
  (the process told to stop: SIGTERM, Ctrl-C) or failed (a crash) before the error goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import anyio
from prefect.exceptions import TerminationSignal
from prefect.logging import get_run_logger
from prefect.states import Cancelled

from bookwarm.deadline import within
from bookwarm.errors import InputError, JobStopped
from bookwarm.warming.context import WarmContext
from bookwarm.warming.stop import (
    CANCELLED_WHY,
    CANCELLING,
    SIGTERM_GRACE_S,
    SIGTERM_WHY,
    Watchdog,
    forget,
    notify_stopped,
    running_here,
    sigterm_stops_jobs,
    stop_signal,
)
from flows.levels import SHARD_SIZE, warm_levels
from tasks.jobs import finish_job, start_job
from tasks.prefect_api import end_unstarted_subflow_runs, flow_run_probe, report_earlier_run_ends


async def warm_new_job(
    ctx: WarmContext,
    job_id: str,
    source: str,
    authors: list[dict[str, Any]],
    *,
    max_depth: int,
    force: bool,
    shard_size: int = SHARD_SIZE,
    concurrency: int = 32,
) -> dict[str, Any]:
    """A new job over ``authors`` (depth 0) and their co-authors: its record, progress, levels, end."""
    progress = await start_job(ctx, job_id, source=source, max_depth=max_depth, authors=authors, force=force)
    return await run_job(
        ctx,
        job_id,
        progress,
        lambda: warm_levels(
            ctx,
            job_id,
            authors,
            max_depth=max_depth,
            force=force,
            shard_size=shard_size,
            concurrency=concurrency,
            progress_artifact_id=str(progress),
        ),
    )


def flow_result(summary: dict[str, Any]) -> Any:
    """What a job's flow returns: a cancelled job ends its run Cancelled (holding the summary)."""
    if summary["status"] == "cancelled":
        return Cancelled(message=summary["stopped"], data=summary)
    return summary


async def existing_job(ctx: WarmContext, job_id: str) -> dict[str, Any]:
    """A job's record for a redrive or resume, or one clear line."""
    record = await ctx.jobs.get(job_id)
    if record is None:
        days = ctx.settings.redis.job_ttl_s // 86400
        raise InputError(f"no job {job_id} in Redis (job records expire after {days} days)")
    return record


async def run_job(
    ctx: WarmContext,
    job_id: str,
    progress: UUID | None,
    warm: Callable[[], Awaitable[None]],
    *,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Runs ``warm`` and returns the job summary (status completed or cancelled). ``run_id``: the
    flow run to watch when it is not the job's own (a redrive or resume of the job)."""
    flow_run = run_id or job_id
    probe = flow_run_probe(flow_run)
    signal = stop_signal(job_id)
    running_here(job_id)
    await report_earlier_run_ends(ctx)
    loop = asyncio.get_running_loop()
    try:
        async with (
            ctx.jobs.heartbeat(job_id),
            Watchdog(job_id, probe, grace_s=ctx.settings.redis.prefect_grace_s),
            asyncio.timeout(None) as overdue,
            sigterm_stops_jobs(lambda: overdue.reschedule(loop.time() + SIGTERM_GRACE_S)),
        ):
            await warm()
        status = "completed"
    except JobStopped as stopped:
        status = stopped.status
    except TimeoutError:
        if not overdue.expired():
            raise
        status = "interrupted"  # SIGTERM, and authors in flight were cancelled at the bound
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            cancelled = False
            with contextlib.suppress(Exception):
                cancelled = await _is_cancelling(probe)
            told_to_stop = isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, TerminationSignal))
            ended = "cancelled" if cancelled else "interrupted" if told_to_stop else "failed"
            with contextlib.suppress(Exception):  # Redis may be what failed: the error says so
                await ctx.jobs.finish(job_id, ended)
                await ctx.run_ends.record(
                    flow_run, job_id, ended, f"job {job_id} {ended}: {type(exc).__name__}"
                )
        raise
    finally:
        forget(job_id)
    if status == "interrupted" and signal.why == SIGTERM_WHY:
        # A runner's or worker's cancel is a SIGTERM to this process (the UI's Cancel, a work
        # pool's): Prefect says which it was. The signal can land in one of the job's own asyncio
        # tasks, where Prefect's TerminationSignal is lost; the wakeup-fd relay stopped the job.
        with contextlib.suppress(Exception):
            if await _is_cancelling(probe):
                status, signal.why = "cancelled", CANCELLED_WHY
    if status in ("cancelled", "interrupted") and signal.trouble_since is None:
        await end_unstarted_shards(ctx, flow_run, signal.why)
    if status == "interrupted":
        summary = await ctx.jobs.finish(job_id, status)
        await _record_end(ctx, flow_run, job_id, summary, str(JobStopped(job_id, status, signal.why)))
        if signal.trouble_since is not None:  # the API is gone: listeners report without waiting on it
            notify_stopped(job_id, status, summary)
        raise JobStopped(job_id, status, signal.why)
    summary = await finish_job(ctx, job_id, status, progress)
    if status == "cancelled":
        summary["stopped"] = str(JobStopped(job_id, status, signal.why))
    await _record_end(ctx, flow_run, job_id, summary, summary.get("stopped", ""))
    await _log_outcome(ctx, job_id, summary)
    return summary


async def end_unstarted_shards(ctx: WarmContext, flow_run: str, why: str) -> None:
    """On a work pool, the stopped job's shard runs no worker has started are Cancelled now
    (tasks.prefect_api.end_unstarted_subflow_runs). Bounded: the job's end must not wait on it. A
    resume or redrive calls it on the job's first run too: a job whose process died had shard runs
    of its next depth waiting for a worker (levels overlap), and none of them must start later."""
    if not ctx.settings.orchestration.work_pool:
        return  # shards run in this process, and stop with it
    try:
        ended = await within(end_unstarted_subflow_runs(UUID(flow_run), why), 15)
    except Exception as exc:
        get_run_logger().warning("could not cancel the job's shard runs not started (%s)", type(exc).__name__)
        return
    if ended:
        get_run_logger().info("%d shard run(s) not started were cancelled with the job", ended)


async def _record_end(
    ctx: WarmContext, flow_run: str, job_id: str, summary: dict[str, Any], why: str
) -> None:
    """Kept until Prefect is seen to hold the run's final state: if the API is lost now, the next
    job (or `services up`) gives it to Prefect, and the UI does not show a finished job Running."""
    status = summary["status"]
    counts = (
        f"{summary['authors_warmed']} warmed, {summary['authors_failed']} failed, "
        f"{summary['authors_not_started']} not started"
    )
    message = f"{why}; {counts}" if why else f"job {job_id} {status}: {counts}"
    with contextlib.suppress(Exception):  # Redis lost too: the record's own error is the one to tell
        await ctx.run_ends.record(flow_run, job_id, status, message)


MAX_DEAD_LETTER_LINES = 200


async def _log_outcome(ctx: WarmContext, job_id: str, summary: dict[str, Any]) -> None:
    """On the job's run page: a WARNING per dead letter, with its reason, then the summary."""
    logger = get_run_logger()
    dead = await ctx.jobs.dead_letters(job_id)
    for entry in dead[:MAX_DEAD_LETTER_LINES]:
        logger.warning("dead letter: %s (depth %d): %s", entry["name"], entry["depth"], entry["reason"])
    if len(dead) > MAX_DEAD_LETTER_LINES:
        logger.warning(
            "... and %d more dead letters: `bookwarm status %s`", len(dead) - MAX_DEAD_LETTER_LINES, job_id
        )
    logger.info(
        "job %s %s: %d queued, %d warmed, %d skipped, %d partial, %d review, %d unknown, %d failed, %d not started; "
        "%d works cached, %d provider calls, %.1f s",
        job_id,
        summary["status"],
        summary["authors_queued"] + summary["redrive_found"] + summary["resume_found"],
        summary["authors_warmed"],
        summary["authors_skipped"],
        summary["authors_partial"],
        summary["authors_review"],
        summary["authors_unknown"],
        summary["authors_failed"],
        summary["authors_not_started"],
        summary["works_cached"],
        summary["provider_calls"],
        summary["duration_s"],
    )


async def _is_cancelling(probe: Callable[[], Awaitable[str]]) -> bool:
    with anyio.fail_after(5):
        return await probe() == CANCELLING
