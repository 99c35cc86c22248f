"""The job's stop signal and watchdog: the probe is the flow run's state as the API reports it."""

from __future__ import annotations

import asyncio
import itertools

from bookwarm.warming.stop import CANCELLING, RUNNING, Watchdog, forget, stop_signal


async def _until(condition, limit_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)


async def test_api_lost_beyond_the_grace_interrupts():
    async def unreachable() -> str:
        raise ConnectionError("refused")

    async with Watchdog("j-lost", unreachable, grace_s=0.3, interval_s=0.05) as dog:
        await _until(lambda: dog.signal.is_set)
    assert dog.signal.status == "interrupted" and "0.3 s" in dog.signal.why
    assert dog.signal.api_in_trouble
    forget("j-lost")


async def test_a_short_outage_within_the_grace_does_not_stop_the_job():
    answers = itertools.chain([ConnectionError("blip")] * 2, itertools.repeat(RUNNING))
    calls = []

    async def flaky() -> str:
        calls.append(1)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async with Watchdog("j-blip", flaky, grace_s=5, interval_s=0.02) as dog:
        await _until(lambda: len(calls) >= 6)
    assert not dog.signal.is_set and dog.signal.trouble_since is None
    forget("j-blip")


async def test_cancelling_stops_at_once():
    async def cancelling() -> str:
        return CANCELLING

    async with Watchdog("j-cancel", cancelling, grace_s=30, interval_s=0.02) as dog:
        await _until(lambda: dog.signal.is_set)
    assert dog.signal.status == "cancelled" and not dog.signal.api_in_trouble
    forget("j-cancel")


async def test_abandon_waits_for_authors_in_flight():
    signal = stop_signal("j-body")
    async with signal.shard_body():
        signal.set("interrupted", "lost")
        waiter = asyncio.ensure_future(signal.abandoned(poll_s=0))
        for _ in range(20):  # the waiter looks at the signal on each turn of the loop: 20 looks
            await asyncio.sleep(0)
        assert not waiter.done()  # a shard still has an author in flight
    await asyncio.wait_for(waiter, 2)
    assert stop_signal("j-body") is signal  # one signal per job in a process
    forget("j-body")
    assert stop_signal("j-body") is not signal
    forget("j-body")
