"""Waits that end: ``within(awaitable, seconds)``, ``asyncio.wait_for`` without its lost
cancellations, and ``end_task(task)``, a cancel that is repeated until the task has ended.

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
from typing import Any, TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
    async with asyncio.timeout(seconds):
        return await awaitable


async def end_task(task: asyncio.Task[Any], *, again_every_s: float = 0.5) -> None:
    """Cancel ``task`` and return once it has ended, cancelling it again while it runs on.

    A cancel can be lost inside a task (3.11's ``wait_for``; a library that catches it on its way
    through a Redis call): a shard's progress publisher, cancelled once while publishing, slept on in
    its loop, and its shard waited for it for ever with its run Running (the pool hang of sessions
    15-16). Its end is read, as ``suppress(CancelledError)`` did: an exception it raised is raised."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=again_every_s)
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error
