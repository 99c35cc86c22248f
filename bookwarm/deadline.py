"""``within(awaitable, seconds)``: ``asyncio.wait_for`` without its lost cancellations.

On Python 3.11 (bookwarm's oldest), ``asyncio.wait_for`` returns the inner result when a cancel of
its task arrives just as the inner awaitable completes, and the cancel is gone (CPython gh-86296,
fixed in 3.12 by rebuilding ``wait_for`` on ``asyncio.timeout``). A task that loops over
``wait_for`` then runs on after ``cancel()``, and whoever awaits it waits for ever: a job's watchdog
did, and its job never ended (docs/decisions.md, session 16). ``asyncio.timeout`` (3.11+) keeps
every cancel; this is it, shaped as ``wait_for`` so that calls read the same. Raises
``TimeoutError`` (``asyncio.TimeoutError`` is the same class) when ``seconds`` pass first."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
    async with asyncio.timeout(seconds):
        return await awaitable
