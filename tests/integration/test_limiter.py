"""The Redis rate limiter against a real Redis: slots 1/rate apart, and a caller whose event loop
handed it Redis's answer late takes a fresh slot instead of sending next to the following caller."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid

import pytest

from bookwarm.cache.redis_client import make_redis
from bookwarm.keys import Keys
from bookwarm.providers.limits import RedisClock, RedisLimiter, utc_day

RATE = 2.0  # slots 0.65 s apart: two slots span 1 s plus two send allowances of 0.15 s


class BusyAfterFirstReply:
    """A redis-py client whose first script reply reaches the caller after the event loop was busy
    for ``busy_s`` (as at the start of a run, when dozens of tasks start at once)."""

    def __init__(self, client, busy_s: float) -> None:
        self.client, self.busy_s, self.calls = client, busy_s, 0

    def register_script(self, body: str):
        script = self.client.register_script(body)

        async def call(*args, **kwargs):
            result = await script(*args, **kwargs)
            self.calls += 1
            if self.calls == 1:
                time.sleep(self.busy_s)  # blocks the event loop, like a burst of CPU work
            return result

        return call


@pytest.fixture
async def redis(settings):
    client = make_redis(settings.redis.url)
    yield client
    await client.aclose()


async def test_concurrent_callers_never_put_more_than_the_rate_in_any_second(redis):
    """The providers' own rule (ISBNdb: N calls in any one-second window): 25 callers at once at
    10/s, sent whenever the limiter lets them go, however late the event loop wakes them."""
    keys, clock = Keys(f"t{uuid.uuid4().hex[:8]}:"), RedisClock()
    await clock.calibrate(redis)
    limiter = RedisLimiter(redis, keys, "isbndb", rate_per_s=10.0, clock=clock)

    async def timed() -> float:
        await limiter.acquire()
        return time.monotonic()

    times = sorted(await asyncio.gather(*(timed() for _ in range(25))))
    busiest = max(sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times))
    assert busiest <= 10, [round(b - a, 4) for a, b in itertools.pairwise(times)]


async def test_a_caller_handed_its_slot_late_takes_a_fresh_one(redis):
    keys, clock = Keys(f"t{uuid.uuid4().hex[:8]}:"), RedisClock()
    await clock.calibrate(redis)
    slow = RedisLimiter(BusyAfterFirstReply(redis, 0.2), keys, "isbndb", rate_per_s=RATE, clock=clock)
    normal = RedisLimiter(redis, keys, "isbndb", rate_per_s=RATE, clock=clock)

    first_used = await slow.acquire()  # slot now, but seen 200 ms later: too late to use
    first_sent = time.monotonic()
    second_used = await normal.acquire()
    second_sent = time.monotonic()

    assert second_sent - first_sent >= 1 / RATE, second_sent - first_sent
    assert (first_used, second_used) == (1, 2)  # the fresh slot did not count twice against the quota


async def test_at_high_rates_a_busy_loops_lag_costs_no_second_reservation(redis):
    """At 1,000 calls/s, 1,000 slots span 1.27 s: a call 50 ms late cannot put 1,001 in any second."""
    keys, clock = Keys(f"t{uuid.uuid4().hex[:8]}:"), RedisClock()
    await clock.calibrate(redis)
    busy = BusyAfterFirstReply(redis, 0.05)
    limiter = RedisLimiter(busy, keys, "openlibrary", rate_per_s=1000.0, clock=clock)

    await limiter.acquire()

    assert busy.calls == 1


async def test_a_caller_given_up_before_its_slot_gives_its_quota_units_back(redis):
    """Enrichment stopped at a shard's end cancels calls still waiting for their slot: no call is
    made, so the day's quota must not count it (it did: 15 ISBNdb units for 9 calls)."""
    keys = Keys(f"t{uuid.uuid4().hex[:8]}:")
    limiter = RedisLimiter(redis, keys, "isbndb", rate_per_s=RATE, daily_quota=100)
    assert await limiter.acquire() == 1  # made: counted
    waiting = asyncio.ensure_future(limiter.acquire(units=3))  # its slot is 1/RATE away
    while await redis.get(keys.quota("isbndb", utc_day())) != b"4":  # reserved (counted) first
        await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await redis.get(keys.quota("isbndb", utc_day())) == b"1"
    assert await limiter.acquire() == 2  # the next call is counted after the one made only
