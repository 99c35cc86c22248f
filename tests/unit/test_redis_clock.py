"""Mapping Redis's clock onto ours: the limiter's lateness check depends on it. No sockets."""

from __future__ import annotations

from bookwarm.providers.limits import RedisClock

REDIS_AHEAD_S = 1_000.0  # Redis's clock reads 1,000 s more than time.monotonic()


def redis_us(local_s: float) -> int:
    return int((local_s + REDIS_AHEAD_S) * 1_000_000)


def test_offset_comes_from_the_fastest_round_trip():
    clock = RedisClock()
    clock.observe(10.0, 10.2, redis_us(10.05))  # slow sample (a busy loop): not precise enough
    assert not clock.known
    clock.observe(20.0, 20.0004, redis_us(20.0002))
    assert clock.known
    assert abs(clock.to_local(redis_us(30.0)) - 30.0) < 0.0005
    clock.observe(40.0, 40.3, redis_us(40.0))  # a later slow sample does not spoil it
    assert abs(clock.to_local(redis_us(50.0)) - 50.0) < 0.0005


def test_fast_samples_keep_refreshing_the_estimate():
    clock = RedisClock()
    clock.observe(1.0, 1.0002, redis_us(1.0001))
    clock.observe(2.0, 2.0008, redis_us(2.0004 + 0.003))  # Redis's clock drifted 3 ms ahead
    assert abs(clock.to_local(redis_us(3.0) + 3_000) - 3.0) < 0.0005
