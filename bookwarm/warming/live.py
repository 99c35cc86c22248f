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
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from bookwarm.deadline import within
from bookwarm.errors import ProviderError
from bookwarm.parsing.names import author_key
from bookwarm.providers.http import CallStats
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
    unknown: bool = False  # an ISBN OpenLibrary knows no book by


class LiveFetcher:
    def __init__(self, ctx: WarmContext) -> None:
        self.ctx = ctx
        self.inflight: dict[str, asyncio.Task[AuthorOutcome | None]] = {}
        self.started = 0  # fetches begun here (the rest joined one in flight): the coalescing

    async def fetch(self, name: str, key: str, wait_s: float) -> Live:
        """The author ``name`` (key ``key``), within ``wait_s``."""
        return await self._once(f"author:{key}", lambda: self._warm(name, key), wait_s)

    async def fetch_isbn(self, isbn13: str, wait_s: float) -> Live:
        """The author of the book with ``isbn13`` (OpenLibrary's edition, then the author by key),
        within ``wait_s``; ``unknown`` when OpenLibrary knows no book by it."""
        return await self._once(f"isbn:{isbn13}", lambda: self._warm_isbn(isbn13), wait_s)

    async def _once(
        self, key: str, start: Callable[[], Coroutine[Any, Any, AuthorOutcome | None]], wait_s: float
    ) -> Live:
        task = self.inflight.get(key)
        joined = task is not None
        if task is None:
            task = asyncio.create_task(start())
            self.inflight[key] = task
            self.started += 1
            task.add_done_callback(lambda done: self._ended(key, done))
        try:
            outcome = await within(asyncio.shield(task), wait_s)
        except TimeoutError:
            return Live(pending=True, joined=joined)
        except ProviderError as exc:
            return Live(failed=str(exc), joined=joined)
        return Live(outcome=outcome, joined=joined, unknown=outcome is None)

    def _ended(self, key: str, task: asyncio.Task[AuthorOutcome | None]) -> None:
        self.inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: one whose reader had gone is not logged as never retrieved

    async def _warm(self, name: str, key: str) -> AuthorOutcome:
        return await warm_one(self.ctx, {"name": name, "key": key, "isbns": []}, 0, live_job())

    async def _warm_isbn(self, isbn13: str) -> AuthorOutcome | None:
        assert self.ctx.providers is not None
        found = await self.ctx.providers.ol_batches.authors_of_isbns([isbn13], CallStats())
        if not found.get(isbn13):
            return None
        name, openlibrary_key = found[isbn13][0]
        author = {
            "name": name,
            "key": author_key(name),
            "isbns": [isbn13],
            "openlibrary_key": openlibrary_key,
        }
        return await warm_one(self.ctx, author, 0, live_job())

    async def close(self) -> None:
        """Fetches still going finish (their authors land in the cache), within a bound."""
        if self.inflight:
            with contextlib.suppress(Exception):
                await within(asyncio.gather(*self.inflight.values(), return_exceptions=True), 15)
