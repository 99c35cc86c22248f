"""A task that loops over a deadline ends when cancelled, even when the cancel lands as the awaited
thing completes: Python 3.11's ``asyncio.wait_for`` loses that cancel (the job's watchdog then ran
for ever and its job never ended); ``within`` keeps it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bookwarm.deadline import end_task, within


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


async def test_end_task_ends_a_task_that_lost_one_cancel() -> None:
    """A loop whose first cancel is caught inside it (as a Redis client's call did under a shard's
    progress publisher): one cancel leaves it running; ``end_task`` repeats it until it ends."""

    def looping() -> asyncio.Task[None]:
        async def body() -> None:
            lost = False
            while True:
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    if lost:
                        raise
                    lost = True  # the first cancel, caught on its way through a library

        return asyncio.create_task(body())

    once = looping()
    await asyncio.sleep(0)
    once.cancel()
    done, _ = await asyncio.wait({once}, timeout=0.3)
    assert not done  # one cancel was not enough
    await end_task(once)
    assert once.cancelled()

    again = looping()
    await asyncio.sleep(0)
    await within(end_task(again, again_every_s=0.05), 2)
    assert again.cancelled()


async def test_end_task_raises_what_the_task_ended_with() -> None:
    async def failing() -> None:
        raise ValueError("a bug")

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="a bug"):
        await end_task(task)
