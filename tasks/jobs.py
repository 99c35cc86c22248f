"""Tasks: a job's record, dead letters and the Prefect artifacts that show them."""

from __future__ import annotations

import contextlib
from typing import Any
from uuid import UUID

from prefect import task
from prefect.artifacts import acreate_progress_artifact, acreate_table_artifact, aupdate_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import task_run

from bookwarm.errors import CacheError, DeadLetter
from bookwarm.warming.batch import Failure
from bookwarm.warming.context import WarmContext
from bookwarm.warming.jobs import DONE, summary_rows
from bookwarm.warming.outcome import AuthorOutcome
from bookwarm.warming.progress import notify


@task(name="start-job", cache_policy=NO_CACHE)
async def start_job(
    ctx: WarmContext, job_id: str, *, source: str, max_depth: int, authors: list[dict[str, Any]], force: bool
) -> UUID:
    await ctx.jobs.start(job_id, source=source, max_depth=max_depth, authors=authors, force=force)
    return await acreate_progress_artifact(
        progress=0.0, description=f"bookwarm job {job_id}: authors warmed / queued"
    )


@task(
    name="dead-letter",
    task_run_name="dead-letter/{author[name]}/d{depth}",
    cache_policy=NO_CACHE,
    retries=0,
)
async def dead_letter(
    ctx: WarmContext, job_id: str, author: dict[str, str], depth: int, reason: str, counted: bool
) -> None:
    """An author that failed every retry, already recorded in the job's dead-letter set (what
    `redrive` re-runs): raised, so that it is a Failed task run of its own, named by the author,
    with its reason, in the Prefect UI. Only an author recorded dead gets one, and the run's id is
    kept, so a redrive that warms the author marks this run resolved."""
    with contextlib.suppress(CacheError):  # without it the run stays Failed after a redrive: no loss
        if task_run.id:
            await ctx.jobs.note_dead_letter_run(job_id, author["key"], str(task_run.id))
    emit_event(
        event="bookwarm.author.failed",
        resource={
            "prefect.resource.id": f"bookwarm.author.{author['key']}",
            "prefect.resource.name": author["name"],
        },
        related=[{"prefect.resource.id": f"bookwarm.job.{job_id}", "prefect.resource.role": "job"}],
        payload={"depth": depth, "reason": reason[:500]},
    )
    if counted:  # progress shows what the summary counts: each author once
        notify(job_id, AuthorOutcome(author["name"], author["key"], depth, "failed", reason=reason))
    raise DeadLetter(author["name"], reason)


SHARD_ORDER = ("failed", "review", "unknown", "partial", "warmed", "skipped")


async def publish_shard_table(
    job_id: str, depth: int, shard: int, outcomes: list[AuthorOutcome], failures: list[Failure]
) -> None:
    """Not a task: one table artifact on the shard's run, its authors and their statuses, those
    that need a look first (one API call per shard)."""
    rows = [
        {
            "name": f.author["name"],
            "key": f.author["key"],
            "status": "failed",
            "works": 0,
            "openlibrary_key": "-",
            "reason": f.reason[:200],
        }
        for f in failures
    ] + [
        {
            "name": o.name,
            "key": o.key,
            "status": o.status,
            "works": o.works,
            "openlibrary_key": o.openlibrary_key or "-",
            "reason": (o.reason or "")[:200],
        }
        for o in outcomes
    ]
    rows.sort(
        key=lambda r: SHARD_ORDER.index(r["status"]) if r["status"] in SHARD_ORDER else len(SHARD_ORDER)
    )
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    await acreate_table_artifact(
        table=rows
        or [{"name": "-", "key": "-", "status": "-", "works": 0, "openlibrary_key": "-", "reason": "-"}],
        description=f"Shard {shard} at depth {depth} of job {job_id}: {len(rows)} authors, "
        + ", ".join(f"{n} {s}" for s, n in counts.items()),
    )


async def update_progress(ctx: WarmContext, job_id: str, artifact_id: UUID | str | None) -> None:
    """Not a task: called from the flow at most once a second (an artifact update is an API call)."""
    if artifact_id is None:
        return
    record = await ctx.jobs.get(job_id) or {}
    done = sum(record.get(k, 0) for k in DONE)
    queued = max(1, record.get("authors_queued", 1))
    await aupdate_progress_artifact(UUID(str(artifact_id)), progress=min(100.0, 100.0 * done / queued))


@task(name="finish-job", cache_policy=NO_CACHE)
async def finish_job(ctx: WarmContext, job_id: str, status: str, artifact_id: UUID | None) -> dict[str, Any]:
    summary = await ctx.jobs.finish(job_id, status)
    if artifact_id is not None:
        await aupdate_progress_artifact(artifact_id, progress=100.0)
    dead = await ctx.jobs.dead_letters(job_id)
    rows = [{"metric": k, "value": v} for k, v in summary_rows(summary)]
    await acreate_table_artifact(
        table=rows, key=f"bookwarm-job-{job_id}"[:60].lower(), description=f"Job {job_id} summary"
    )
    await acreate_table_artifact(
        table=dead
        or [{"name": "-", "key": "-", "depth": "-", "reason": "no dead letters", "failed_at": "-"}],
        key=f"bookwarm-dead-{job_id}"[:60].lower(),
        description=f"Dead letters of job {job_id}: re-drive with `bookwarm redrive {job_id}`",
    )
    review = await ctx.reviews.for_job(job_id)
    if review:
        await acreate_table_artifact(
            table=[
                {
                    "name": e["name"],
                    "candidates": "; ".join(
                        f"{c['openlibrary_key']} {c['name']} ({c['works']} works)" for c in e["candidates"]
                    ),
                    "books": "; ".join(e["books"]),
                    "depth": e["depth"],
                }
                for e in review
            ],
            key=f"bookwarm-review-{job_id}"[:60].lower(),
            description="Authors to review: run the resolve-review deployment (or `bookwarm review resolve "
            "NAME --openlibrary-key OL…A`; `--not-an-author` blocks the name)",
        )
    return summary
