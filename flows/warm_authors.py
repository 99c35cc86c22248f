"""Subflow: warm one shard of authors at one depth, and hand the co-authors found to the job.

The unit Prefect schedules and a deployment can run on another machine. Its authors are known up
front, so it claims them all, then asks OpenLibrary in batches (one provider task per batch: ISBN
identities, name identities, bibliographies by key), and each batch's authors are written by their
`warm-batch` task as soon as it lands (one task run per batch, not per author: docs/decisions.md);
each author that fails every retry is a Failed `dead-letter` task run of its own, and the shard's
authors and statuses end in a table artifact on its run. Enrichment
from Google Books and ISBNdb runs beside it as provider tasks over chunks of warmed authors, and
stops when the last bibliography is cached: what is left stays pending for the `enrich` flow.
A job told to stop (cancelled, or its Prefect API lost) starts no further author here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Cancelled, Crashed

from bookwarm.deadline import within
from bookwarm.errors import CacheError
from bookwarm.providers.openlibrary_batch import batches
from bookwarm.warming.batch import BatchResult, Failure, Item
from bookwarm.warming.context import WarmContext
from bookwarm.warming.outcome import AuthorOutcome
from bookwarm.warming.progress import OutcomePublisher
from bookwarm.warming.shard import ClaimKeeper, Fetched, plan_shard, wanted_for
from bookwarm.warming.stop import WORKER_DIED_WHY, Watchdog, forget, stop_signal
from flows.enrichment_lane import EnrichmentLane
from flows.flow_process import prepare_flow_process
from flows.params import AuthorKeys, Concurrency, Depth, JobId, ShortId
from tasks.jobs import dead_letter, publish_shard_table, update_progress
from tasks.openlibrary import fetch_works, resolve_identities
from tasks.prefect_api import CANCELLING, flow_run_probe
from tasks.settings import run_settings
from tasks.warm_batch import warm_authors_batch


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
    prepare_flow_process()
    settings = await run_settings()
    signal = stop_signal(job_id)
    async with WarmContext(settings) as ctx:
        if not signal.watched:  # run by a worker: its job may have ended while the run waited for a slot
            # what the job wrote, not its heartbeat's reading: a shard must never refuse a live job
            status = await ctx.jobs.stored_status(job_id) or "gone"
            if status != "running":
                forget(job_id)
                return Cancelled(message=f"not started: its job is {status}")  # type: ignore[return-value]
        authors = await ctx.jobs.queued_authors(job_id, author_keys)
        stopped: str | None = None  # how this shard's own run was stopped, run by a worker
        if signal.watched:
            found = await _warm_shard(
                ctx, authors, depth, job_id, pass_id, force, concurrency, progress_artifact_id, shard
            )
        else:
            probe = flow_run_probe(str(flow_run.id))
            try:
                async with (
                    Watchdog(job_id, probe, grace_s=settings.redis.prefect_grace_s),
                    OutcomePublisher(ctx.redis, ctx.keys.job_outcomes(job_id), job_id),
                ):
                    found = await _warm_shard(
                        ctx, authors, depth, job_id, pass_id, force, concurrency, progress_artifact_id, shard
                    )
            finally:
                stopped = signal.status
                forget(job_id)
            if stopped != "cancelled" and await _cancelling(probe):
                # Cancelled (the job, or Prefect cascading its parent's cancel) after the watchdog's last
                # look: from Cancelling Prefect takes no end but Cancelled, and a Completed proposal
                # left the run Cancelling for good.
                stopped = "cancelled"
        if signal.why == WORKER_DIED_WHY:
            # Not Completed: the job runs what this shard left on another worker (flows.shards).
            return Crashed(message=f"stopped: {WORKER_DIED_WHY}")  # type: ignore[return-value]
        if stopped == "cancelled":
            # Its run is Cancelling, from which Prefect takes no end but Cancelled: say it here, where
            # the shard stopped, rather than leave the run Cancelling until a worker notices.
            return Cancelled(message=f"stopped with its job: {signal.why}")  # type: ignore[return-value]
    return found


async def _warm_shard(
    ctx: WarmContext,
    authors: list[dict[str, Any]],
    depth: int,
    job_id: str,
    pass_id: str,
    force: bool,
    concurrency: int,
    progress_artifact_id: str | None,
    shard: int,
) -> int:
    """The shard's authors, claimed, fetched in batches and written. Each batch hands the
    co-authors its authors name to the job's pass as it ends, so the next level can start on them
    while this one runs (flows.levels). Returns how many co-authors it found."""
    signal = stop_signal(job_id)
    gate = asyncio.Semaphore(concurrency)
    last_update = [0.0]
    plan = await plan_shard(ctx, authors, depth, force)
    assert ctx.providers is not None
    key_batch = ctx.providers.ol_batches.key_batch
    lane = EnrichmentLane(ctx, job_id, depth)
    outcomes: list[AuthorOutcome] = []
    failures: list[Failure] = []
    coauthors_found: set[str] = set()
    batch_numbers = itertools.count()
    failed_batches = [0]

    async def write(items: list[Item], keeper: ClaimKeeper, upstream: list[Any]) -> None:
        """One `warm-batch` task run, then a `dead-letter` task run for each author it failed."""
        state = await warm_authors_batch(  # type: ignore[misc]  # Prefect 3.8 types it as a State: it is a coroutine of one
            ctx,
            items,
            depth,
            job_id,
            shard,
            next(batch_numbers),
            force,
            keeper,
            gate,
            return_state=True,
            wait_for=upstream,  # the provider batches it depends on, shown in the run's graph
        )
        if state.is_failed():  # its authors stay uncounted: the level's next round takes them
            failed_batches[0] += 1
            get_run_logger().warning(
                "a batch of %d authors failed (%s); left for the level's next round",
                len(items),
                state.message,
            )
            return
        result: BatchResult = await state.aresult()
        outcomes.extend(result.outcomes)
        coauthors = {p["key"]: p for o in result.outcomes for p in o.coauthors}
        await ctx.jobs.add_found(job_id, pass_id, depth, list(coauthors.values()))
        coauthors_found.update(coauthors)
        for outcome in result.outcomes:
            await lane.offer(outcome.to_dict())
            outcome.bibliography = None  # handed over: a shard keeps only the outcome
        for failure in result.failures:
            await _dead_letter(ctx, job_id, failure, depth)
        failures.extend(result.failures)
        if progress_artifact_id and not signal.api_in_trouble and time.monotonic() - last_update[0] > 1.0:
            last_update[0] = time.monotonic()
            # Best effort, and bounded: a call begun just before the API was lost would otherwise
            # hold this shard for the client's whole retry budget (~70 s), and the job with it.
            with contextlib.suppress(Exception):
                await within(update_progress(ctx, job_id, progress_artifact_id), PROGRESS_TIMEOUT_S)

    # Batches fetched ahead of the authors being written: enough to keep ``concurrency`` writers
    # busy, few enough that a stopped job has little fetched and not written.
    ahead = asyncio.Semaphore(max(4, 2 * concurrency // key_batch))

    async def chunk(index: int, group: list[dict[str, Any]], keeper: ClaimKeeper) -> None:
        async with ahead:
            fetched = await fetch_chunk(index, group)
            await write([Item(a, fetched.get(a["key"])) for a in group], keeper, fetched.upstream)

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
            if state.is_completed():  # else its authors are fetched alone
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
        # Fresh (skipped) authors and those another run holds: batches of their own, no provider call.
        others = [Item(a, None, plan.fresh.get(a["key"])) for a in authors if a["key"] not in plan.claimed]
        await asyncio.gather(
            *(chunk(i, g, keeper) for i, g in enumerate(batches(claimed, key_batch))),
            *(write(g, keeper, []) for g in batches(others, key_batch)),
        )
        # Everything this shard will find is in Redis now: said before its enrichment lane and its
        # run end, so the next depth need not wait for them (flows.levels). Only when every author
        # is counted: one left for a later round may still find co-authors.
        counted = not failed_batches[0] and not signal.is_set
        if counted and not await ctx.jobs.uncounted(job_id, [a["key"] for a in authors]):
            await ctx.jobs.hand_over(job_id, pass_id, depth, shard)
    if not signal.api_in_trouble:
        try:
            await within(publish_shard_table(job_id, depth, shard, outcomes, failures), 10)
        except Exception as exc:  # the view, not the record: said, and the shard goes on
            get_run_logger().warning(
                "shard %d at depth %d: its table of authors was not written (%s: %.200s); the job's "
                "summary and `bookwarm status` have the counts",
                shard,
                depth,
                type(exc).__name__,
                exc,
            )
    return len(coauthors_found)


async def _cancelling(probe: Any) -> bool:
    """Whether the run is Cancelling now; False when the API does not say within 5 s."""
    with contextlib.suppress(Exception):
        return bool(await within(probe(), 5) == CANCELLING)
    return False


async def _dead_letter(ctx: WarmContext, job_id: str, failure: Failure, depth: int) -> None:
    """Recorded in the job's dead letters, then a Failed `dead-letter` task run of its own. If Redis
    cannot record it, the author is not dead, only uncounted: no task run says otherwise, and the
    level's next round (or a resume) takes it."""
    try:
        counted = await ctx.jobs.add_dead_letter(job_id, failure.author, depth, failure.reason)
    except CacheError as exc:
        get_run_logger().warning(
            "%s: not recorded as a dead letter (%s); left for the level's next round",
            failure.author["name"],
            type(exc).__name__,
        )
        return
    await dead_letter(ctx, job_id, failure.author, depth, failure.reason, counted, return_state=True)  # type: ignore[misc]  # Prefect 3.8 types it as a State: it is a coroutine of one
