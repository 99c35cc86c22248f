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


class Pauses(list[float]):
    """The pauses ``patiently`` takes, handed to it as its sleep: nothing else in the process waits less."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


async def test_a_redis_restart_of_a_few_seconds_is_ridden_out():
    command, pauses = FlakyCommand(failures=3), Pauses()
    assert await jobs.patiently(command, 15.5, pauses) == "ok"
    assert command.calls == 4
    assert pauses == sorted(pauses) and pauses[0] > 0  # backing off, never a busy loop


@pytest.mark.parametrize("patience_s", [15.5, 3.0, 0.2])
async def test_redis_gone_for_good_is_a_cache_error_once_the_patience_is_spent(patience_s):
    command, pauses = FlakyCommand(failures=100), Pauses()
    with pytest.raises(CacheError, match="Redis failed"):
        await jobs.patiently(command, patience_s, pauses)
    assert sum(pauses) == pytest.approx(patience_s)  # waited the whole patience, not a second more
    assert command.calls == len(pauses) + 1  # and tried once more after the last pause
