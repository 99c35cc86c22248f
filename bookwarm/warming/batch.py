"""Warm one batch of a shard's authors: the unit Prefect tracks (one `warm-batch` task run).

A task run per author cost the Prefect server 20-25 ms of CPU and the flow process ~26 ms, more
than the work (docs/decisions.md). So a batch is written here in one go: the authors whose
OpenLibrary answers its batch tasks already hold are written together (their objects in parallel,
then one Redis pipeline, then one counting round trip). The rest (skipped as fresh, held by
another run, answered with an error, or written by a write that failed) go one by one through
`warm_one`, retried with backoff: a retry asks OpenLibrary again only for what it did not answer.
What still fails is returned as a failure; the flow makes each a dead letter of its own.

Only failures of the world become dead letters: bookwarm's own errors (a provider, a cache tier) and
the OS's (a socket, a timeout). Anything else is a bug: it is not retried nor dressed as a provider
failure, but fails the batch's task run with its traceback, once the batch's other authors are
done; its author stays uncounted, so the level's next round, a resume or a redrive takes it again.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from bookwarm.errors import BookwarmError, CacheError, ProviderUnavailable
from bookwarm.warming.author import Prepared, commit, prepare, warm_one
from bookwarm.warming.context import WarmContext
from bookwarm.warming.outcome import AuthorOutcome
from bookwarm.warming.progress import notify
from bookwarm.warming.shard import ClaimKeeper, Fetched
from bookwarm.warming.stop import stop_signal

# Retries of an author's failures (BOOKWARM_AUTHOR_RETRIES, 3 as in the original design); the delay
# (BOOKWARM_AUTHOR_RETRY_DELAY_S) doubles, plus up to this share of jitter.
JITTER = 0.5
# What an author may fail with and still be retried, then made a dead letter: see the module's docstring.
WORLD_FAILURES = (BookwarmError, OSError, TimeoutError)


@dataclass
class Item:
    """One author of a batch, with what its shard knows: the batches' answers (None: not asked,
    it is held by another run) and its processed record when it is fresh (then it is skipped)."""

    author: dict[str, Any]
    fetched: Fetched | None = None
    fresh: dict[str, Any] | None = None


@dataclass
class Failure:
    author: dict[str, Any]
    reason: str
    attempts: int


@dataclass
class BatchResult:
    outcomes: list[AuthorOutcome] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    not_started: list[dict[str, Any]] = field(default_factory=list)  # the job is stopping
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        """Authors by status, failed included: what the batch's event carries."""
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if self.failures:
            counts["failed"] = len(self.failures)
        return counts


async def warm_batch(
    ctx: WarmContext,
    items: list[Item],
    depth: int,
    job_id: str,
    *,
    force: bool,
    keeper: ClaimKeeper,
    gate: asyncio.Semaphore,
) -> BatchResult:
    """``gate`` bounds the shard's authors written one by one at once."""
    started = time.monotonic()
    result = BatchResult()
    ready: list[Prepared] = []
    alone: list[tuple[Item, int]] = []  # (item, its first attempt)
    for item in items:
        if _answered(item, keeper):
            assert item.fetched is not None
            try:
                ready.append(prepare(item.author, depth, item.fetched))
            except ProviderUnavailable:  # OpenLibrary answered with an error: asked again alone
                alone.append((item, 1))
        else:
            alone.append((item, 0))
    by_key = {item.author["key"]: item for item in items}
    if ready:
        try:
            outcomes, lost = await commit(ctx, ready, job_id, {p.key: keeper.claims[p.key] for p in ready})
        except CacheError:  # Redis failed the batch's pipeline: nothing marked done, each goes alone
            alone += [(by_key[p.key], 1) for p in ready]
        else:
            keeper.forget([o.key for o in outcomes])
            for outcome in outcomes:
                outcome.seconds = round(time.monotonic() - started, 4)
            # Written and marked done: should counting fail past Redis's own retries, the batch
            # task fails and the level's next round counts these authors (as fresh skips).
            await _count(ctx, job_id, outcomes, result)
            alone += [(by_key[p.key], 1) for p, _ in lost]
    ended = await asyncio.gather(
        *(_alone(ctx, item, first, depth, job_id, force, keeper, gate, result) for item, first in alone),
        return_exceptions=True,
    )
    for error in ended:
        if isinstance(error, BaseException):
            raise error  # a bug: the batch's task run fails with it, its author is left uncounted
    result.seconds = round(time.monotonic() - started, 4)
    return result


def _answered(item: Item, keeper: ClaimKeeper) -> bool:
    """Claimed by this shard, and its batches answered: written with the batch."""
    fetched = item.fetched
    return (
        item.fresh is None
        and fetched is not None
        and item.author["key"] in keeper.claims
        and not fetched.needs_fetch(retry=False)
    )


async def _alone(
    ctx: WarmContext,
    item: Item,
    first: int,
    depth: int,
    job_id: str,
    force: bool,
    keeper: ClaimKeeper,
    gate: asyncio.Semaphore,
    result: BatchResult,
) -> None:
    signal = stop_signal(job_id)
    reason = "not attempted"
    retries = ctx.settings.orchestration.author_retries
    delay_s = ctx.settings.orchestration.author_retry_delay_s
    for attempt in range(first, retries + 1):
        if attempt and delay_s:
            await asyncio.sleep(delay_s * 2 ** (attempt - 1) * (1 + JITTER * random.random()))
        async with gate:
            fetched = item.fetched
            if signal.is_set and (fetched is None or fetched.needs_fetch(retry=attempt > 0)):
                result.not_started.append(item.author)  # stopping: left queued for a resume
                return
            try:
                outcome = await warm_one(
                    ctx,
                    item.author,
                    depth,
                    job_id,
                    force=force,
                    fetched=fetched,
                    keeper=keeper,
                    fresh=item.fresh,
                    refetch=attempt > 0,
                )
            except WORLD_FAILURES as exc:  # retried, then a dead letter; anything else is a bug
                reason = f"{type(exc).__name__}: {exc}"
                continue
        result.outcomes.append(outcome)
        if outcome.counted:
            notify(job_id, outcome)
        return
    result.failures.append(Failure(item.author, reason, retries + 1 - first))


async def _count(ctx: WarmContext, job_id: str, outcomes: list[AuthorOutcome], result: BatchResult) -> None:
    counted = await ctx.jobs.count_many(job_id, [(o.key, o.status, o.works) for o in outcomes])
    for outcome, was_counted in zip(outcomes, counted, strict=True):
        outcome.counted = was_counted
        result.outcomes.append(outcome)
        if was_counted:  # progress shows what the summary counts: each author once
            notify(job_id, outcome)
