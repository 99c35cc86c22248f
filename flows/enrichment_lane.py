"""Enrichment beside a shard's bibliographies: warmed authors are noted as pending enrichment and
fed to one worker per provider, each running `enrich` provider tasks over small chunks. When the
shard's last bibliography is cached the lane stops: no further chunk, and the chunk in flight asks
no further author and gives up a call not answered within 0.2 s (bookwarm.warming.
enrichment.enrich_chunk), so enrichment never makes a job longer; what is left stays pending for
the `enrich` flow."""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType
from typing import Any

from prefect.logging import get_run_logger

from bookwarm.warming.context import WarmContext
from bookwarm.warming.enrichment import ENRICHERS, Pending, record_pending
from tasks.enrich import enrich_authors

# A chunk is about this many seconds of calls at the provider's configured rate (Google Books 5/s:
# 10 authors, ISBNdb 1/s: 2), so a chunk in flight when the shard ends is short; never above
# MAX_CHUNK, and as large as that when the provider is unlimited, where a task run per couple of
# authors would cost more than their calls.
CHUNK_SECONDS = 2.0
MAX_CHUNK = 50
LANE_EXIT_S = 30.0  # how long a shard's end waits for an enrichment chunk in flight
LANE_CANCEL_S = 5.0  # and then for its cancel to land


def chunk_size(rate_per_s: float) -> int:
    if rate_per_s <= 0:
        return MAX_CHUNK
    return max(1, min(MAX_CHUNK, int(rate_per_s * CHUNK_SECONDS)))


class EnrichmentLane:
    def __init__(self, ctx: WarmContext, job_id: str, depth: int) -> None:
        self.ctx = ctx
        self.job_id = job_id
        self.depth = depth
        self.queues: dict[str, deque[Pending]] = {p: deque() for p in ENRICHERS}
        self.stopping = asyncio.Event()
        self.wakeup = asyncio.Event()
        self.workers: list[asyncio.Task[None]] = []

    async def offer(self, outcome: dict[str, Any]) -> None:
        """Take a finished author's bibliography (dropped from the outcome: it is big) and queue
        it with each provider that can add something."""
        bibliography = outcome.pop("bibliography", None)
        if not bibliography or outcome.get("status") not in ("warmed", "partial"):
            return
        for provider in await record_pending(self.ctx, self.job_id, self.depth, bibliography):
            author = bibliography["author"]
            self.queues[provider].append(Pending(author["name"], author["key"], self.depth, self.job_id))
            self.wakeup.set()

    async def __aenter__(self) -> EnrichmentLane:
        self.workers = [asyncio.create_task(self._work(p)) for p in ENRICHERS]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stopping.set()
        self.wakeup.set()
        # The chunk in flight stops (enrich_chunk), within a bound: enrichment never holds a shard's end (a shard
        # once sat 150 s after its last bibliography with its ISBNdb lane stuck between two chunks).
        # What a cancelled chunk did not do stays pending for the `enrich` flow: nothing is lost.
        _, late = await asyncio.wait(self.workers, timeout=LANE_EXIT_S)
        for worker, provider in zip(self.workers, ENRICHERS, strict=True):
            if worker in late:
                worker.cancel()
                get_run_logger().warning(
                    "enrichment by %s did not end within %g s of the shard's last bibliography; its authors "
                    "stay pending for the `enrich` flow",
                    provider,
                    LANE_EXIT_S,
                )
        if late:  # a cancel is asked, not obeyed: one swallowed deep in a library must not hold the shard
            _, stuck = await asyncio.wait(late, timeout=LANE_CANCEL_S)
            for worker, provider in zip(self.workers, ENRICHERS, strict=True):
                if worker in stuck:
                    get_run_logger().warning(
                        "enrichment by %s did not stop within %g s of its cancel; left behind, its authors "
                        "stay pending for the `enrich` flow",
                        provider,
                        LANE_CANCEL_S,
                    )
        for provider, worker in zip(ENRICHERS, self.workers, strict=True):
            if not worker.done() or worker.cancelled():
                continue
            error = worker.exception()
            if isinstance(error, Exception):
                get_run_logger().warning(
                    "enrichment by %s stopped in this shard (%s: %.200s); its authors stay pending for "
                    "the `enrich` flow",
                    provider,
                    type(error).__name__,
                    error,
                )

    async def _work(self, provider: str) -> None:
        queue = self.queues[provider]
        chunk_no = 0
        while True:
            entries = await self._take(queue, chunk_size(getattr(self.ctx.settings, provider).rate_per_s))
            if not entries:
                return
            result = await enrich_authors(self.ctx, provider, entries, self.depth, chunk_no, self.stopping)
            chunk_no += 1
            if result["stopped"]:
                return  # quota spent or provider down: the rest waits in the pending set

    async def _take(self, queue: deque[Pending], size: int) -> list[Pending]:
        """Up to ``size`` entries as soon as one is there; none once the shard's bibliographies are
        done (what is queued then stays pending)."""
        while not queue and not self.stopping.is_set():
            self.wakeup.clear()
            await self.wakeup.wait()
        if self.stopping.is_set():
            return []
        return [queue.popleft() for _ in range(min(size, len(queue)))]
