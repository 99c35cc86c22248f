"""Level-by-level recursion over co-authors, shared by the library, popular-authors, redrive and
resume flows.

Depth 0 is the given authors; each level's co-authors not seen before become the next level,
while depth < max_depth. Each level runs as shards (the unit of distribution: subflows here, or
deployment runs on a work pool's workers, flows.shards). A job that
was told to stop (bookwarm.warming.stop) starts no further shard and raises JobStopped at the end
of its level: what it did not start stays queued in its record for `bookwarm resume`. A shard the
Prefect API fails to start under load (503) is run again after a pause, with fewer shards at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import httpx
from prefect.logging import get_run_logger

from bookwarm.errors import JobStopped
from bookwarm.warming.context import WarmContext
from bookwarm.warming.progress import OutcomeFollower
from bookwarm.warming.stop import stop_signal
from flows.shards import ShardRunner

MAX_PARALLEL_SHARDS = (
    4  # subflows at once (or submissions at once, on a pool): the SQLite API locks up past a few dozen
)
# Authors per shard subflow. Each subflow's start creates a flow run on the Prefect server; on the
# embedded SQLite server, busy writing the running shards' task-run events, that waited 1-30 s here,
# during which the run stood nearly idle (1,000 authors: 40/s in shards of 500, 42-48/s in one).
SHARD_SIZE = 1000
LEVEL_ROUNDS = 5  # passes over a level's authors not yet counted (shards the API failed to start)
ROUND_BACKOFF_S = 2.0  # pause before the next pass, doubling


async def warm_levels(
    ctx: WarmContext,
    job_id: str,
    authors: list[dict[str, str]],
    *,
    max_depth: int,
    force: bool,
    shard_size: int,
    concurrency: int,
    progress_artifact_id: str | None,
    start_depth: int = 0,
    queued_field: str = "authors_queued",
    done: frozenset[str] = frozenset(),
    exclude: frozenset[str] = frozenset(),
) -> None:
    """``queued_field``: where co-authors the job never queued are counted (a redrive counts them
    apart, so the job's ``authors_queued`` stays what the job itself queued). ``done``: authors a
    resumed job already counted; never forced again, they only give their co-authors. ``exclude``:
    authors left alone at every level (a resume leaves the job's dead letters to redrive)."""
    pass_id = uuid.uuid4().hex[:12]  # where this pass's shards leave the co-authors they find
    runner = ShardRunner(
        ctx, job_id, pass_id, concurrency=concurrency, progress_artifact_id=progress_artifact_id
    )
    follow = OutcomeFollower(ctx.redis, ctx.keys.job_outcomes(job_id), job_id) if runner.on_pool else None
    async with follow or contextlib.nullcontext():
        await _levels(
            ctx, runner, authors, max_depth, force, shard_size, start_depth, queued_field, done, exclude
        )


async def _levels(
    ctx: WarmContext,
    runner: ShardRunner,
    authors: list[dict[str, str]],
    max_depth: int,
    force: bool,
    shard_size: int,
    start_depth: int,
    queued_field: str,
    done: frozenset[str],
    exclude: frozenset[str],
) -> None:
    job_id, pass_id = runner.job_id, runner.pass_id
    signal = stop_signal(job_id)
    seen = {a["key"] for a in authors} | exclude
    frontier = [a for a in authors if a["key"] not in exclude]
    gate = AdaptiveGate(MAX_PARALLEL_SHARDS)
    for depth in range(start_depth, max_depth + 1):
        if not frontier:
            return
        pending = frontier
        get_run_logger().info(
            "depth %d: %d authors in %d shard(s) of up to %d%s",
            depth,
            len(frontier),
            -(-len(frontier) // shard_size),
            shard_size,
            f", on work pool {ctx.settings.orchestration.work_pool!r}" if runner.on_pool else "",
        )
        for attempt in range(LEVEL_ROUNDS):
            unfinished = await _round(runner, pending, depth, attempt, force, done, shard_size, gate)
            if signal.is_set:
                raise JobStopped(job_id, signal.status or "interrupted", signal.why)
            left = await ctx.jobs.uncounted(job_id, [a["key"] for a in pending])
            # A shard that did not run to its end handed over no co-authors: its authors already
            # counted run again as done (skipped, read from the cache) to give theirs. Dead letters
            # have none to give, and are redrive's.
            regive = unfinished - left
            if regive:
                regive -= {entry["key"] for entry in await ctx.jobs.dead_letters(job_id)}
            if not left and not regive:
                break
            # Shards the orchestrator could not start or report (a 503 under load), or whose worker
            # was lost: again, fewer at once, after a pause; authors counted by then are not fetched again.
            pending = [a for a in pending if a["key"] in left or a["key"] in regive]
            done = done | regive
            await asyncio.sleep(ROUND_BACKOFF_S * 2**attempt)
        else:
            raise JobStopped(
                job_id,
                "interrupted",
                f"{len(pending)} authors at depth {depth} could not be warmed in {LEVEL_ROUNDS} rounds: "
                "the Prefect API or its workers kept failing",
            )
        if depth == max_depth:
            return
        frontier = []
        for person in await ctx.jobs.found(job_id, pass_id, depth):
            if person["key"] not in seen:
                seen.add(person["key"])
                frontier.append(person)
        if frontier:
            await ctx.jobs.enqueue(job_id, frontier, depth + 1, queued_field)


async def _round(
    runner: ShardRunner,
    authors: list[dict[str, str]],
    depth: int,
    round_no: int,
    force: bool,
    done: frozenset[str],
    shard_size: int,
    gate: AdaptiveGate,
) -> set[str]:
    """One pass over a level's authors in shards. Returns the keys of the authors of shards that did
    not run to their end (their co-authors, if any, never reached Redis)."""
    job_id = runner.job_id
    signal = stop_signal(job_id)
    groups = [[a for a in authors if a["key"] in done], [a for a in authors if a["key"] not in done]]
    shards = [
        (group[i : i + shard_size], force and group is groups[1])
        for group in groups
        for i in range(0, len(group), shard_size)
    ]

    async def run(index: int, shard: list[dict[str, str]], forced: bool) -> bool:
        """True when the shard ran to its end (and so handed over its co-authors)."""
        try:
            async with gate:  # in process: the whole shard; on a pool: its submission only
                if signal.is_set:  # stopping: this shard is not started, its authors stay queued
                    return False
                if not runner.on_pool:
                    await runner.run_here(shard, depth, index, forced)
                    return True
                run_id = await runner.submit(shard, depth, round_no, index, forced)
            return await runner.wait(run_id, shard, depth, index)
        except httpx.HTTPError as exc:  # the Prefect API failed the subflow (provider errors are mapped)
            gate.shrink()
            await runner.ctx.jobs.incr(job_id, shard_retries=1)
            get_run_logger().warning(
                "shard %d at depth %d: the Prefect API failed it (%s: %.200s); its authors not yet counted run "
                "again, %d shard(s) at once",
                index,
                depth,
                type(exc).__name__,
                exc,
                gate.capacity,
            )
            return False
        except Exception:
            if signal.api_in_trouble:  # the subflow could not be created or reported
                return False
            raise

    level = asyncio.ensure_future(asyncio.gather(*(run(i, s, f) for i, (s, f) in enumerate(shards))))
    abandon = asyncio.ensure_future(signal.abandoned())
    either: set[asyncio.Future[Any]] = {level, abandon}
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    abandon.cancel()
    if not level.done():  # interrupted, no author in flight here: the subflows wait on a lost API
        raise JobStopped(job_id, signal.status or "interrupted", signal.why)
    return {
        a["key"]
        for (shard, _), finished in zip(shards, level.result(), strict=True)
        if not finished
        for a in shard
    }


class AdaptiveGate:
    """Shards at once, fewer (down to 1) each time the Prefect API shows overload."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.active = 0
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.active < self.capacity)
            self.active += 1

    async def __aexit__(self, *exc: object) -> None:
        async with self._changed:
            self.active -= 1
            self._changed.notify_all()

    def shrink(self) -> None:
        self.capacity = max(1, self.capacity - 1)
