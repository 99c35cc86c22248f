"""A task that loops over a deadline ends when cancelled, even when the cancel lands as the awaited
thing completes: Python 3.11's ``asyncio.wait_for`` loses that cancel (the job's watchdog then ran
for ever and its job never ended); ``within`` keeps it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bookwarm.deadline import within


async def _loop_cancelled_as_its_wait_completes(
    wait: Callable[[Awaitable[Any], float], Awaitable[Any]],
) -> bool:
    """Whether a task looping over ``wait`` ends within a second of a cancel that lands in the same
    step as the result it waits for."""
    waited: list[asyncio.Future[int]] = []

    async def watch() -> None:
        while True:
            waited.append(asyncio.get_running_loop().create_future())
            await wait(waited[-1], 5)

    task = asyncio.create_task(watch())
    while not waited:
        await asyncio.sleep(0)
    waited[-1].set_result(1)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1)
    task.cancel()  # a lost cancel leaves it looping: end it for the next test
    await asyncio.wait({task}, timeout=1)
    return bool(done)


async def test_a_cancel_landing_as_the_wait_completes_ends_the_loop() -> None:
    assert await _loop_cancelled_as_its_wait_completes(within)


async def test_the_deadline_still_ends_a_wait() -> None:
    with pytest.raises(TimeoutError):
        await within(asyncio.Event().wait(), 0.01)
    assert await within(asyncio.sleep(0, "done"), 1) == "done"


@pytest.mark.skipif(__import__("sys").version_info >= (3, 12), reason="fixed in Python 3.12's wait_for")
async def test_python_311s_wait_for_loses_that_cancel() -> None:
    """Why `within` exists (and why ruff bans `asyncio.wait_for` in bookwarm's code)."""
    assert not await _loop_cancelled_as_its_wait_completes(asyncio.wait_for)
