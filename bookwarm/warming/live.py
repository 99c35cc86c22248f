"""A reader's miss answered from OpenLibrary while the reader waits (the read API's live fetch).

The author is warmed exactly as a warm run warms it (``warm_one``: its claim, the provider code, the
write path to both tiers), so what a live fetch writes is what a warm would have. One fetch per
author however many ask: in this process one task that every request for the author awaits; across
processes, machines and warms, the author's claim (a second claimant waits for the first and reads
its result). A fetch outlives its reader's deadline (the reader gets a 202; the next read finds the
author), and OpenLibrary is asked within the readers' share of its rate (ProviderSession, reader).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from bookwarm.errors import ProviderError
from bookwarm.providers.limits import utc_day
from bookwarm.warming.author import warm_one
from bookwarm.warming.context import WarmContext
from bookwarm.warming.outcome import AuthorOutcome


def live_job() -> str:
    """The job record live fetches count in, one a UTC day: `bookwarm status api-live-YYYY-MM-DD`."""
    return f"api-live-{utc_day()}"


@dataclass(frozen=True)
class Live:
    """How a live fetch ended for one reader: ``outcome`` when it finished within the wait, else
    ``pending`` (still going), or ``failed`` with why (the share or the day's budget spent, the
    provider down)."""

    outcome: AuthorOutcome | None = None
    pending: bool = False
    failed: str = ""
    joined: bool = False  # this reader joined a fetch already in flight here (coalesced)


class LiveFetcher:
    def __init__(self, ctx: WarmContext) -> None:
        self.ctx = ctx
        self.inflight: dict[str, asyncio.Task[AuthorOutcome]] = {}
        self.started = 0  # fetches begun here (the rest joined one in flight): the coalescing

    async def fetch(self, name: str, key: str, wait_s: float) -> Live:
        task = self.inflight.get(key)
        joined = task is not None
        if task is None:
            task = asyncio.create_task(self._warm(name, key))
            self.inflight[key] = task
            self.started += 1
            task.add_done_callback(lambda done: self._ended(key, done))
        try:
            return Live(outcome=await asyncio.wait_for(asyncio.shield(task), wait_s), joined=joined)
        except TimeoutError:
            return Live(pending=True, joined=joined)
        except ProviderError as exc:
            return Live(failed=str(exc), joined=joined)

    def _ended(self, key: str, task: asyncio.Task[AuthorOutcome]) -> None:
        self.inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: one whose reader had gone is not logged as never retrieved

    async def _warm(self, name: str, key: str) -> AuthorOutcome:
        return await warm_one(self.ctx, {"name": name, "key": key, "isbns": []}, 0, live_job())

    async def close(self) -> None:
        """Fetches still going finish (their authors land in the cache), within a bound."""
        if self.inflight:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*self.inflight.values(), return_exceptions=True), 15)
