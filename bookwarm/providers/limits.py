"""Per-provider request rate and daily quota, enforced in Redis so they hold across every
concurrent author, process and machine.

One Lua script per acquire (measured: ~0.2 ms on loopback, against ~100 ms for a Prefect
``rate_limit`` acquire). It is GCRA used as a scheduler: each caller *reserves* the next free
slot (slots are 1/rate apart) and sleeps until it, so N waiting callers never retry in a herd and
the provider sees an even rate. The daily counter is incremented in the same script, before the
call is made, so failed calls count too, and it lives in Redis, so restarts do not reset it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bookwarm import clock
from bookwarm.errors import CacheError, ProviderUnavailable, QuotaExhausted
from bookwarm.keys import Keys

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local quota = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[4])
local units = tonumber(ARGV[6])
if quota > 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used + units > quota then return {-1, used, now} end
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(tat, now)
local wait = start - now
if wait > max_wait then return {-2, wait, now} end
local next_tat = start + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.floor((next_tat - now) / 1000) + 1000)
local used = 0
if ARGV[5] == '1' then
  used = redis.call('INCRBY', KEYS[2], units)
  if used == units then redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3])) end
end
return {wait, used, now}
"""


MIN_LATE_S = 0.005  # lateness always tolerated: round trips, timer resolution, a busy loop's turn
# Between a slot and the request's arrival, a saturated two-core machine lost over 100 ms (a busy
# event loop, a new connection, the server's own turn): 6 self-caused 429s in 106 OpenLibrary calls
# at the real limits with no allowance, 1 in 101 with 0.1 s (docs/decisions.md).
SEND_ALLOWANCE_S = 0.15


def late_tolerance_s(rate_per_s: float, interval_us: int) -> float:
    """How late a caller may send and still keep "at most N calls in any one-second window".

    Providers count calls per second: N consecutive slots span N * interval, a little over one
    second, and that excess is how late any call may leave without an N+1th call landing in some
    window. The per-slot slack always holds too (it keeps neighbours 1/rate apart), and is all there
    is below one call a second or for fractional rates. At high rates the tolerance grows to a few
    hundred ms, so a busy event loop's lag does not make every caller reserve twice (it did: half of
    all reservations, limits off).
    """
    if rate_per_s <= 0:
        return 0.0
    per_slot = (interval_us - 1_000_000 / rate_per_s) / 1_000_000
    per_window = (int(rate_per_s) * interval_us - 1_000_000) / 1_000_000 if rate_per_s >= 1 else 0.0
    return max(per_slot, per_window)


def utc_day() -> str:
    """The quota day, on bookwarm's clock (its offset moves simulated days forward, quotas included)."""
    return datetime.fromtimestamp(clock.now(), UTC).strftime("%Y-%m-%d")


class RedisClock:
    """Redis's clock (the one slots are reserved in) on this process's monotonic clock.

    Estimated from the fastest round trip seen: its midpoint is within half that round trip of the
    moment Redis answered. ``calibrate`` takes a few samples while the event loop is still quiet;
    every fast reservation refreshes the estimate. Shared by the limiters of one Redis.
    """

    PRECISE_RTT_S = 0.01  # slower samples leave the estimate unknown: limiters then time from receipt

    def __init__(self) -> None:
        self.offset_s: float | None = None
        self._best_rtt_s = float("inf")

    @property
    def known(self) -> bool:
        return self.offset_s is not None and self._best_rtt_s <= self.PRECISE_RTT_S

    def observe(self, issued: float, received: float, redis_now_us: int) -> None:
        rtt = received - issued
        if rtt <= max(self._best_rtt_s, 0.001):  # samples up to 1 ms keep refreshing it (drift)
            self._best_rtt_s = rtt
            self.offset_s = redis_now_us / 1_000_000 - (issued + received) / 2

    def to_local(self, redis_us: int) -> float:
        """A Redis time (µs) as a time.monotonic() value; only when ``known``."""
        assert self.offset_s is not None
        return redis_us / 1_000_000 - self.offset_s

    async def calibrate(self, client: aioredis.Redis, samples: int = 3) -> None:
        try:
            for _ in range(samples):
                issued = time.monotonic()
                seconds, micros = await client.time()
                self.observe(issued, time.monotonic(), int(seconds) * 1_000_000 + int(micros))
        except RedisError as exc:
            raise CacheError(f"rate limiter: Redis failed ({type(exc).__name__})") from None


class RedisLimiter:
    """Rate (calls/s) and daily quota of one provider. ``acquire`` before every HTTP attempt."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        provider: str,
        *,
        rate_per_s: float,
        daily_quota: int = 0,
        max_wait_s: float = 900.0,
        safety: float = 0.02,
        slack_ms: float = 15.0,
        send_allowance_s: float = SEND_ALLOWANCE_S,
        clock: RedisClock | None = None,
        burst: int = 0,
    ) -> None:
        self.client = client
        self.keys = keys
        self.provider = provider
        # Slots are spaced a little wider than 1/rate: requests leave some milliseconds early or late
        # (scheduling, connection set-up), and a provider counting "N per second" must never see N+1
        # in one second. Jitter is absolute, so most of the slack is too: 2% + 15 ms per slot
        # (at most a quarter of a slot, for fast limits).
        slack_us = min(slack_ms * 1000, 0.25 * 1_000_000 / rate_per_s) if rate_per_s > 0 else 0
        self.interval_us = int(1_000_000 * (1 + safety) / rate_per_s + slack_us) if rate_per_s > 0 else 0
        if rate_per_s >= 1:
            # N slots span at least 1 s + two send allowances: one for a caller woken late (checked
            # below), one for the time between its slot and its bytes leaving (a busy loop, a new
            # connection), which no check before sending can see.
            floor_us = 1_000_000 * (1 + 2 * send_allowance_s) / int(rate_per_s)
            self.interval_us = max(self.interval_us, int(floor_us))
        self.daily_quota = daily_quota
        tolerance = late_tolerance_s(rate_per_s, self.interval_us) - (
            send_allowance_s if rate_per_s >= 1 else 0
        )
        self.late_s = max(tolerance, MIN_LATE_S)
        if rate_per_s > 0 and burst > 0:
            # The provider lets ``burst`` calls through above its rate (a leaky bucket, as nginx's
            # limit_req): a call sent late only joins the next ones, which the bucket absorbs, so
            # slots are 1/rate apart (+2 %) with no per-window slack, and only a caller more than
            # half the burst late takes a fresh slot. Strict "N in any second" providers keep the
            # wider spacing above (OpenLibrary at 3/s: 433 ms a slot without its burst, 340 ms with).
            self.interval_us = int(1_000_000 * (1 + safety) / rate_per_s)
            self.late_s = max(MIN_LATE_S, (burst // 2) / rate_per_s)
        self.max_wait_us = int(max_wait_s * 1_000_000)
        self._script = client.register_script(_ACQUIRE)
        self.clock = clock or RedisClock()

    async def acquire(self, units: int = 1) -> int:
        """Wait for this call's slot; return the units counted today. Raises QuotaExhausted.

        ``units`` is what the provider charges for this call against its daily quota (ISBNdb's
        `POST /books` may count every ISBN); a call that would pass the quota is not made.

        A caller that runs late would send its request next to the ones of later slots, so it takes a
        fresh slot instead; the quota is counted once. Lateness is measured against the slot in
        Redis's clock: a busy event loop may hand us Redis's answer long after it came (measured at
        the start of a run: 110-175 ms), and a clock started on receipt would not see that.
        """
        issued = time.monotonic()
        wait_us, used, redis_now = await self._reserve(count=True, units=units)
        try:
            for fresh in (False, True):  # at most one fresh slot: on a saturated loop every slot runs late
                received = time.monotonic()
                self.clock.observe(issued, received, redis_now)
                if self.clock.known:
                    slot = self.clock.to_local(redis_now + wait_us)
                else:  # never early: the slot is at most `wait` after the reply arrived
                    slot = received + wait_us / 1_000_000
                if slot > received:
                    await asyncio.sleep(slot - received)
                if fresh or time.monotonic() - slot <= self.late_s:
                    break
                issued = time.monotonic()
                wait_us, _, redis_now = await self._reserve(count=False)
        except asyncio.CancelledError:
            # Given up before its slot (enrichment stopped at a shard's end): no call is made, so
            # the units go back; the slot itself stays spent, which only spaces later calls more.
            await self.refund(units)
            raise
        return used

    async def refund(self, units: int) -> None:
        """Give back the quota units of a call acquired but never made (best effort)."""
        if self.daily_quota:
            with contextlib.suppress(Exception):
                await self.client.decrby(self.keys.quota(self.provider, utc_day()), units)

    async def _reserve(self, *, count: bool, units: int = 1) -> tuple[int, int, int]:
        """(microseconds to the reserved slot, calls counted today, Redis's time in microseconds)."""
        day = utc_day()
        try:
            wait_us, used, redis_now = await self._script(
                keys=[self.keys.rate(self.provider), self.keys.quota(self.provider, day)],
                args=[
                    self.interval_us,
                    self.daily_quota if count else 0,
                    2 * 86400,
                    self.max_wait_us,
                    int(count),
                    units,
                ],
            )
        except RedisError as exc:
            raise CacheError(
                f"rate limiter for {self.provider}: Redis failed ({type(exc).__name__})"
            ) from None
        if wait_us == -1:
            raise QuotaExhausted(
                self.provider,
                f"daily quota budget of {self.daily_quota} units spent, or too small for this call ({day} UTC)",
            )
        if wait_us == -2:
            raise ProviderUnavailable(self.provider, f"rate backlog over {self.max_wait_us // 1_000_000}s")
        return int(wait_us), int(used), int(redis_now)


class CappedLimiter:
    """A reader's calls to a provider: first a slot of the readers' own share (a limiter of its own,
    with its daily budget and a short backlog: past it, the call is not made), then a slot of the
    provider's one limiter that every warm shares. Readers can thus never push the provider past
    its rate, nor take more than their share of it."""

    def __init__(self, cap: RedisLimiter, shared: RedisLimiter) -> None:
        self.cap = cap
        self.shared = shared

    async def acquire(self, units: int = 1) -> int:
        await self.cap.acquire(units)
        try:
            return await self.shared.acquire(units)
        except asyncio.CancelledError:
            await self.cap.refund(units)
            raise
