"""Levels of co-authors, shared by the library, popular-authors, redrive and resume flows.

Depth 0 is the given authors; the co-authors they name that were not seen before are depth 1, and
so on while depth < max_depth. Each level runs as shards (the unit of distribution: subflows here,
or deployment runs on a work pool's workers, flows.shards).

Levels overlap: each batch of a shard hands its co-authors to the job's pass in Redis as it ends,
and the next level starts shards on them while its own level still runs, so OpenLibrary's rate is
spent on the next level instead of idling through a level's tail and the next one's start. Each
author is still taken once, at its shallowest depth: the co-authors found at depth d are admitted
(as depth d+1) only once depth d is closed, that is once depth d-1 has ended, or every shard of it
has handed over all it found with its authors all counted, and everything it found has been
admitted. Every author at depth d is found at depth d-1, so by then every author of depth <= d is
known (seen), and one not seen is truly at depth d+1: no author is ever admitted deeper than its
shallowest depth, and at most two levels fetch at once (a third may be ending its runs).

A job that was told to stop (bookwarm.warming.stop) starts no further shard and raises JobStopped
once its running shards end: what it did not start stays queued in its record for `bookwarm
resume`. A shard the Prefect API fails to start under load (503) is run again after a pause, with
fewer shards at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
from prefect.logging import get_run_logger

from bookwarm.deadline import within
from bookwarm.errors import JobStopped
from bookwarm.warming.context import WarmContext
from bookwarm.warming.progress import OutcomeFollower
from bookwarm.warming.stop import StopSignal, stop_signal
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
# A level still being found starts a shard on what it has once its oldest author waited this long
# and fewer than PARTIAL_SHARDS of its shards are running; past that, the next gathers meanwhile
# (a shard per batch found would pay a subflow's start for every few authors). One at a time made a
# small library's second batch of co-authors wait for the first's shard to end (0.45 s a level).
FLUSH_S = 0.2
PARTIAL_SHARDS = 1
MIN_PARTIAL = 50  # a partial shard of fewer would pay a subflow's start for less than one OpenLibrary batch
FOUND_POLL_S = 0.1  # how often co-authors found by a running level are read


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


class _Level:
    """One depth of the job: the authors admitted to it so far, those no shard has taken yet, and
    whether more may come (``closed``) and whether it is done (``ended``)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.authors: list[dict[str, str]] = []
        self.buffer: list[dict[str, str]] = []
        self.buffered_since = 0.0
        self.closed = asyncio.Event()
        self.ended = asyncio.Event()  # set once its shards and rounds are over, or the job stopped
        self.changed = asyncio.Event()
        self.shards = 0  # started in its first round
        self.later_round = False  # a round after the first began (shards numbered from 0 again)

    def admit(self, people: list[dict[str, str]]) -> None:
        if not self.buffer:
            self.buffered_since = time.monotonic()
        self.authors += people
        self.buffer += people
        self.changed.set()

    def close(self) -> None:
        self.closed.set()
        self.changed.set()

    def take(self, shard_size: int, *, shards_running: int) -> list[dict[str, str]]:
        """Authors for the next shard, or [] to wait for more (see FLUSH_S)."""
        waited = time.monotonic() - self.buffered_since >= FLUSH_S
        if len(self.buffer) >= shard_size or (
            self.buffer
            and (
                self.closed.is_set()
                or (waited and shards_running < PARTIAL_SHARDS and len(self.buffer) >= MIN_PARTIAL)
            )
        ):
            taken, self.buffer = self.buffer[:shard_size], self.buffer[shard_size:]
            self.buffered_since = time.monotonic()
            return taken
        return []


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
    job_id = runner.job_id
    signal = stop_signal(job_id)
    seen = {a["key"] for a in authors} | exclude
    levels = {depth: _Level(depth) for depth in range(start_depth, max_depth + 1)}
    levels[start_depth].admit([a for a in authors if a["key"] not in exclude])
    levels[start_depth].close()
    gate = AdaptiveGate(MAX_PARALLEL_SHARDS)

    async def admit(depth: int) -> None:
        """Co-authors found at ``depth`` into the next level, once ``depth`` is closed: every author
        found at depth - 1 admitted (so in ``seen``), not only depth - 1 ended."""
        source, target = levels[depth], levels[depth + 1]
        await source.closed.wait()
        offset = 0
        while not signal.is_set:
            ended = source.ended.is_set() or await found_all(source)
            people, offset = await ctx.jobs.found_since(job_id, runner.pass_id, depth, offset)
            fresh = [p for p in people if p["key"] not in seen]
            if fresh and not signal.is_set:
                seen.update(p["key"] for p in fresh)
                await ctx.jobs.enqueue(job_id, fresh, depth + 1, queued_field)
                target.admit(fresh)
            if ended:
                break
            with contextlib.suppress(TimeoutError):
                await within(source.ended.wait(), FOUND_POLL_S)
        target.close()

    async def found_all(level: _Level) -> bool:
        """Nothing more will be found at ``level``: every shard of its first round is started and
        has handed over all it found with every author counted, and no later round began. Then the
        next depth closes without waiting for those shards' runs to end (their enrichment lanes,
        tables and final states: 0.3-0.5 s a level on a small library's critical path)."""
        if not level.closed.is_set() or level.buffer or level.later_round:
            return False
        handed = await ctx.jobs.handed_over(job_id, runner.pass_id, level.depth)
        return not level.later_round and set(range(level.shards)) <= handed

    async def level(depth: int) -> None:
        try:
            await _run_level(ctx, runner, levels[depth], force, shard_size, done, gate)
        except JobStopped as stopped:  # its rounds gave up: the other levels start nothing more either
            signal.set(stopped.status, stopped.why)
            raise
        finally:
            levels[depth].ended.set()

    work = [asyncio.ensure_future(level(depth)) for depth in levels]
    work += [asyncio.ensure_future(admit(depth)) for depth in levels if depth < max_depth]
    try:
        await asyncio.wait(work, return_when=asyncio.FIRST_EXCEPTION)
        failed = [t for t in work if t.done() and not t.cancelled() and t.exception() is not None]
        if any(not isinstance(t.exception(), JobStopped) for t in failed):
            raise next(t.exception() for t in failed if not isinstance(t.exception(), JobStopped))  # type: ignore[misc]
        # A level that stopped: the job is stopping, and the other levels end as they see it
        await asyncio.wait(work)
        for task in work:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in work:
            task.cancel()
        await asyncio.gather(*work, return_exceptions=True)


async def _run_level(
    ctx: WarmContext,
    runner: ShardRunner,
    level: _Level,
    force: bool,
    shard_size: int,
    done: frozenset[str],
    gate: AdaptiveGate,
) -> None:
    """A level's first round as its authors arrive, then rounds over those not yet counted."""
    job_id, depth = runner.job_id, level.depth
    signal = stop_signal(job_id)
    unfinished = await _first_round(runner, level, force, shard_size, done, gate)
    if level.authors:
        get_run_logger().info(
            "depth %d: %d authors in %d shard(s) of up to %d%s",
            depth,
            len(level.authors),
            level.shards,
            shard_size,
            f", on work pool {ctx.settings.orchestration.work_pool!r}" if runner.on_pool else "",
        )
    pending = level.authors
    for attempt in range(LEVEL_ROUNDS):
        if attempt:
            level.later_round = True
            unfinished = await _round(runner, pending, depth, attempt, force, done, shard_size, gate)
        if signal.is_set:
            raise JobStopped(job_id, signal.status or "interrupted", signal.why)
        if not pending:
            return
        left = await ctx.jobs.uncounted(job_id, [a["key"] for a in pending])
        # A shard that did not run to its end handed over only the co-authors of its finished
        # batches: its authors already counted run again as done (skipped, read from the cache) to
        # give theirs. Dead letters have none to give, and are redrive's.
        regive = unfinished - left
        if regive:
            regive -= {entry["key"] for entry in await ctx.jobs.dead_letters(job_id)}
        if not left and not regive:
            return
        # Shards the orchestrator could not start or report (a 503 under load), or whose worker
        # was lost: again, fewer at once, after a pause; authors counted by then are not fetched again.
        pending = [a for a in pending if a["key"] in left or a["key"] in regive]
        done = done | regive
        await asyncio.sleep(ROUND_BACKOFF_S * 2**attempt)
    raise JobStopped(
        job_id,
        "interrupted",
        f"{len(pending)} authors at depth {depth} could not be warmed in {LEVEL_ROUNDS} rounds: "
        "the Prefect API or its workers kept failing",
    )


def _shards(
    authors: list[dict[str, str]], force: bool, done: frozenset[str], shard_size: int
) -> list[tuple[list[dict[str, str]], bool]]:
    """Authors in shards, those already done apart (never forced: they only give co-authors)."""
    groups = [[a for a in authors if a["key"] in done], [a for a in authors if a["key"] not in done]]
    return [
        (group[i : i + shard_size], force and group is groups[1])
        for group in groups
        for i in range(0, len(group), shard_size)
    ]


async def _first_round(
    runner: ShardRunner,
    level: _Level,
    force: bool,
    shard_size: int,
    done: frozenset[str],
    gate: AdaptiveGate,
) -> set[str]:
    """Shards on the level's authors as they are admitted, until it is closed and all are taken.
    Returns the keys of the authors of shards that did not run to their end."""
    signal = stop_signal(runner.job_id)
    running: list[tuple[list[dict[str, str]], asyncio.Future[bool]]] = []
    index = 0
    while not signal.is_set:
        in_flight = sum(not task.done() for _, task in running)
        taken = level.take(shard_size, shards_running=in_flight)
        if taken:
            for shard, forced in _shards(taken, force, done, shard_size):
                task = asyncio.ensure_future(_run_shard(runner, shard, level.depth, 0, index, forced, gate))
                running.append((shard, task))
                index += 1
                level.shards += 1
            continue
        if level.closed.is_set() and not level.buffer:
            break
        level.changed.clear()
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(level.changed.wait())]
        waits += [task for _, task in running if not task.done()]
        await asyncio.wait(waits, timeout=FLUSH_S, return_when=asyncio.FIRST_COMPLETED)
        waits[0].cancel()
    return await _settle(signal, runner.job_id, running)


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
    """A later pass over a level's authors in shards. Returns the keys of the authors of shards that
    did not run to their end (their co-authors, if any, never reached Redis)."""
    running = [
        (shard, asyncio.ensure_future(_run_shard(runner, shard, depth, round_no, i, forced, gate)))
        for i, (shard, forced) in enumerate(_shards(authors, force, done, shard_size))
    ]
    return await _settle(stop_signal(runner.job_id), runner.job_id, running)


async def _settle(
    signal: StopSignal, job_id: str, running: Sequence[tuple[list[dict[str, str]], asyncio.Future[bool]]]
) -> set[str]:
    """Waits for the shards; the keys of the authors of those that did not run to their end."""
    if not running:
        return set()
    gathered: asyncio.Future[list[bool]] = asyncio.gather(*(task for _, task in running))
    abandon = asyncio.ensure_future(signal.abandoned())
    either: set[asyncio.Future[Any]] = {gathered, abandon}
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    abandon.cancel()
    if not gathered.done():  # interrupted, no author in flight here: the subflows wait on a lost API
        raise JobStopped(job_id, signal.status or "interrupted", signal.why)
    return {
        a["key"]
        for (shard, _), finished in zip(running, gathered.result(), strict=True)
        if not finished
        for a in shard
    }


async def _run_shard(
    runner: ShardRunner,
    shard: list[dict[str, str]],
    depth: int,
    round_no: int,
    index: int,
    forced: bool,
    gate: AdaptiveGate,
) -> bool:
    """True when the shard ran to its end (and so handed over all its co-authors)."""
    job_id = runner.job_id
    signal = stop_signal(job_id)
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
