"""A shard's hand-over points ride out a short Redis outage, and give up with a CacheError after it."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from bookwarm.errors import CacheError
from bookwarm.warming import jobs


class FlakyCommand:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self):
        self.calls += 1
        failing = self.calls <= self.failures

        async def answer():
            if failing:
                raise RedisConnectionError("Error 111 connecting to 127.0.0.1")
            return "ok"

        return answer()


@pytest.fixture
def pauses(monkeypatch):
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(jobs.asyncio, "sleep", sleep)
    return slept


async def test_a_redis_restart_of_a_few_seconds_is_ridden_out(pauses):
    command = FlakyCommand(failures=3)
    assert await jobs._patiently(command) == "ok"
    assert command.calls == 4 and pauses == [0.5, 1.0, 2.0]


async def test_redis_gone_for_good_is_a_cache_error_after_the_last_try(pauses):
    command = FlakyCommand(failures=100)
    with pytest.raises(CacheError, match="Redis failed"):
        await jobs._patiently(command)
    assert command.calls == jobs.HANDOVER_TRIES and sum(pauses) == pytest.approx(15.5)
