"""Subflow: warm one shard of authors at one depth, and return the co-authors found.

The unit Prefect schedules and a deployment can run on another machine. Its authors are known up
front, so it claims them all, then asks OpenLibrary in batches (one provider task per batch: ISBN
identities, name identities, bibliographies by key), and each batch's authors are written by their
own `warm-author` task as soon as it lands: that task's state is the author's status. Enrichment
from Google Books and ISBNdb runs beside it as provider tasks over chunks of warmed authors, and
stops when the last bibliography is cached: what is left stays pending for the `enrich` flow.
A job told to stop (cancelled, or its Prefect API lost) starts no further author here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from bookwarm.providers.openlibrary_batch import batches
from bookwarm.warming.context import WarmContext
from bookwarm.warming.progress import OutcomePublisher
from bookwarm.warming.shard import ClaimKeeper, Fetched, plan_shard, wanted_for
from bookwarm.warming.stop import Watchdog, forget, stop_signal
from flows.enrichment_lane import EnrichmentLane
from flows.params import AuthorKeys, Concurrency, Depth, JobId, ShortId
from tasks.jobs import record_dead_letter, update_progress
from tasks.openlibrary import fetch_works, resolve_identities
from tasks.prefect_api import flow_run_probe
from tasks.settings import run_settings
from tasks.warm_author import warm_author


class FetchedChunk(dict):
    """What one batch found, by author key (a holder to fill for those it did not), and the batch
    task states the authors' tasks wait for (shown in the run's graph)."""

    def __init__(self) -> None:
        super().__init__()
        self.upstream: list[Any] = []

    def get(self, key: str) -> Fetched:  # type: ignore[override]
        return super().get(key) or Fetched.not_asked()


PROGRESS_TIMEOUT_S = 3.0


@flow(name="warm-authors", flow_run_name="warm-authors/d{depth}/shard-{shard}", log_prints=False)
async def warm_authors(
    author_keys: AuthorKeys,
    depth: Depth,
    job_id: JobId,
    pass_id: ShortId,
    force: bool = False,
    concurrency: Concurrency = 32,
    shard: int = 0,
    progress_artifact_id: ShortId | None = None,
) -> int:
    """Warms the job's queued authors ``author_keys`` (keys, not authors: a shard's parameters stay
    small) and hands their co-authors to the job's pass in Redis. Returns how many it found.

    In the job's process it shares the job's stop signal; run by a worker it watches its own flow
    run instead (a cancel, or a lost API), and publishes its authors' outcomes for the job's
    progress display."""
    settings = await run_settings()
    signal = stop_signal(job_id)
    async with WarmContext(settings) as ctx:
        authors = await ctx.jobs.queued_authors(job_id, author_keys)
        if signal.watched:
            found = await _warm_shard(ctx, authors, depth, job_id, force, concurrency, progress_artifact_id)
        else:
            probe = flow_run_probe(str(flow_run.id))
            try:
                async with (
                    Watchdog(job_id, probe, grace_s=settings.redis.prefect_grace_s),
                    OutcomePublisher(ctx.redis, ctx.keys.job_outcomes(job_id), job_id),
                ):
                    found = await _warm_shard(
                        ctx, authors, depth, job_id, force, concurrency, progress_artifact_id
                    )
            finally:
                forget(job_id)
        await ctx.jobs.add_found(job_id, pass_id, depth, found)
    return len(found)


async def _warm_shard(
    ctx: WarmContext,
    authors: list[dict[str, Any]],
    depth: int,
    job_id: str,
    force: bool,
    concurrency: int,
    progress_artifact_id: str | None,
) -> list[dict[str, Any]]:
    """The shard's authors, claimed, fetched in batches and written; the co-authors they name."""
    signal = stop_signal(job_id)
    gate = asyncio.Semaphore(concurrency)
    last_update = [0.0]
    plan = await plan_shard(ctx, authors, depth, force)
    assert ctx.providers is not None
    key_batch = ctx.providers.ol_batches.key_batch
    lane = EnrichmentLane(ctx, job_id, depth)

    async def one(
        author: dict[str, Any], fetched: Fetched | None, keeper: ClaimKeeper, upstream: list[Any]
    ) -> dict[str, Any] | None:
        async with gate:
            if signal.is_set and (fetched is None or fetched.needs_fetch(retry=False)):
                return None  # stopping: not started (what was fetched already is still written)
            state = await warm_author(  # type: ignore[misc]  # Prefect 3.8 types it as a State: it is a coroutine of one
                author,
                depth,
                job_id,
                ctx,
                force,
                fetched,
                keeper,
                plan.fresh.get(author["key"]),
                return_state=True,
                wait_for=upstream,  # the batches it depends on, shown in the run's graph
            )
            if state.is_failed() and signal.api_in_trouble:
                result = None  # the orchestrator's fault, not the author's: left for a resume
            elif state.is_failed():
                try:
                    await record_dead_letter(ctx, job_id, author, depth, state.message or "failed")
                except Exception as exc:  # Redis is down too: uncounted, the level's next round takes it
                    get_run_logger().warning(
                        "%s: not recorded as a dead letter (%s); left for the level's next round",
                        author["name"],
                        type(exc).__name__,
                    )
                result = None
            else:
                result = await state.aresult()
                await lane.offer(result)
        if progress_artifact_id and not signal.api_in_trouble and time.monotonic() - last_update[0] > 1.0:
            last_update[0] = time.monotonic()
            # Best effort, and bounded: a call begun just before the API was lost would otherwise
            # hold this shard for the client's whole retry budget (~70 s), and the job with it.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(update_progress(ctx, job_id, progress_artifact_id), PROGRESS_TIMEOUT_S)
        return result

    # Batches fetched ahead of the authors being written: enough to keep ``concurrency`` writers
    # busy, few enough that a stopped job has little fetched and not written.
    ahead = asyncio.Semaphore(max(4, 2 * concurrency // key_batch))

    async def chunk(index: int, group: list[dict[str, Any]], keeper: ClaimKeeper) -> list[Any]:
        async with ahead:
            fetched = await fetch_chunk(index, group)
        return list(
            await asyncio.gather(*(one(a, fetched.get(a["key"]), keeper, fetched.upstream) for a in group))
        )

    async def fetch_chunk(index: int, group: list[dict[str, Any]]) -> FetchedChunk:
        """One batch of claimed authors: identities where unknown, then bibliographies by key."""
        found = FetchedChunk()
        if signal.is_set:
            return found
        wanted = [wanted_for(a, plan) for a in group]
        upstream = found.upstream
        unknown = [w for w in wanted if not w.openlibrary_key]
        if unknown:
            state = await resolve_identities(ctx, job_id, unknown, depth, index, return_state=True)  # type: ignore[misc]  # Prefect 3.8 types it as a State: it is a coroutine of one
            if state.is_completed():  # else its authors are fetched alone by their own tasks
                found.update(await state.aresult())
                upstream.append(state)
        for w in wanted:
            if w.openlibrary_key:
                found[w.key] = Fetched(identity=w.identity())
        keys = sorted(
            {f.identity.openlibrary_key for f in found.values() if f.identity and f.identity.openlibrary_key}
        )
        works = {}
        if keys and not signal.is_set:
            state = await fetch_works(ctx, job_id, keys, depth, index, return_state=True)  # type: ignore[misc]  # Prefect 3.8 types it as a State: it is a coroutine of one
            if state.is_completed():
                works = await state.aresult()
                upstream.append(state)
        for fetched in found.values():
            if fetched.identity is not None and fetched.identity.openlibrary_key:
                fetched.works = works.get(fetched.identity.openlibrary_key)
        return found

    async with signal.shard_body(), ClaimKeeper(ctx, plan.claimed) as keeper, lane:
        claimed = [a for a in authors if a["key"] in plan.claimed]
        others = [a for a in authors if a["key"] not in plan.claimed]
        groups = await asyncio.gather(
            *(chunk(i, g, keeper) for i, g in enumerate(batches(claimed, key_batch))),
            *(one(a, None, keeper, []) for a in others),
        )
    outcomes = [o for g in groups for o in (g if isinstance(g, list) else [g])]
    discovered: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        for person in (outcome or {}).get("coauthors", []):
            discovered.setdefault(person["key"], person)
    return list(discovered.values())
