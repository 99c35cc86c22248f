"""The one way bookwarm opens Redis: a *blocking* pool, so hundreds of concurrent authors wait
for a free connection instead of failing with MaxConnectionsError (seen at 150 concurrent
limiter calls with redis-py's default pool). One client per run and event loop.

Commands that fail to connect or time out are retried by redis-py for about ``ride_out_s``
(``BOOKWARM_REDIS_RIDE_OUT_S``, 9.5 s): a
Redis restarting, failing over or briefly unreachable is ridden out by every call (claims, cache
writes, counts, limits), not only at the shard hand-over points. Longer than that, the call fails
and the job stops naming Redis; calls begun once Redis has been away that long try once, so the
job stops within seconds of the window rather than each of its calls waiting out a window of its
own (the retry state is the pool's, shared by its connections). A write retried after Redis took it but the reply was lost is safe
where it matters: cache writes, claims and markers are SET/HSET, the author count is a script that
counts each author once; the INCRBYs that are not (a quota's units, a job's ``provider_calls``) may
count one call twice, which spends budget early and never exceeds it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import TimeoutError as RedisTimeoutError

from bookwarm.deadline import within
from bookwarm.errors import ConfigError

# 0.5, 1, 2, 2, 2, 2 s between tries: a Redis back within ~9.5 s of going away is not noticed.
RETRIES = 6
RIDE_OUT_S = 9.5  # the setting's default (RedisSettings.ride_out_s)

T = TypeVar("T")


class RideOut(Retry):
    """redis-py's retry with one memory for the whole pool: no call retries past ``ride_out_s``
    from the start of an outage (a call begun after it tries once); a success ends the outage.
    Bounded by the outage, not per call, it also stays bounded where redis-py nests its connect
    retry inside a command's."""

    def __init__(self, ride_out_s: float = RIDE_OUT_S) -> None:
        super().__init__(ExponentialBackoff(cap=2.0, base=0.25), RETRIES)
        self.ride_out_s = ride_out_s
        self.down_since: float | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> RideOut:
        return self  # redis-py copies the retry into each connection: keep one state

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        self._backoff.reset()
        failures = 0
        while True:
            try:
                result = await do()
            except self._supported_errors as error:
                if is_retryable and not is_retryable(error):
                    raise
                failures += 1
                self.down_since = self.down_since or time.monotonic()
                await (fail(error, failures) if with_failure_count else fail(error))
                if failures > self._retries or time.monotonic() - self.down_since > self.ride_out_s:
                    raise
                await asyncio.sleep(self._backoff.compute(failures))
            else:
                self.down_since = None
                return result


class OwnedPoolRedis(aioredis.Redis):
    """A client that owns its pool: ``aclose()`` closes its connections (``Redis(connection_pool=)``
    does not, and every shard's context left up to 128 connections open for the job's life).

    A connection opened on an event loop that has since closed (a client used inside an
    ``asyncio.run`` of its own, then closed from another loop) cannot be closed through that loop;
    its socket goes with the loop's objects, so that one failure is not the caller's."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        except RuntimeError as exc:
            if "Event loop is closed" not in str(exc):
                raise


def make_redis(
    url: str | None, *, max_connections: int = 64, ride_out_s: float = RIDE_OUT_S
) -> aioredis.Redis:
    if not url:
        raise ConfigError("Redis is not configured: set BOOKWARM_REDIS_URL (or run `bookwarm services up`)")
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=60,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry=RideOut(ride_out_s),
    )
    if sys.version_info < (3, 12):  # the URL's scheme chose the class (TCP, TLS or a Unix socket)
        pool.connection_class = _keeping_cancels(pool.connection_class)
    return OwnedPoolRedis.from_pool(pool)


class _SendKeepsCancels:
    """redis-py sends each command under ``asyncio.wait_for(send, socket_timeout)``. On Python 3.11,
    ``wait_for`` loses a cancel that arrives as the send completes (CPython gh-86296): the command
    then runs on as if never cancelled. Found by the suite: a job start cancelled while queueing
    went on to queue all its 200,000 authors (one run in two on this machine). The same send, and
    the same timeout, under ``asyncio.timeout`` (bookwarm.deadline.within), which keeps the cancel."""

    socket_timeout: float | None

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        timeout, self.socket_timeout = self.socket_timeout, None  # the connection is this command's
        try:
            await within(super().send_packed_command(command, check_health), timeout)  # type: ignore[misc]
        except TimeoutError:
            raise RedisTimeoutError("Timeout writing to socket") from None
        finally:
            self.socket_timeout = timeout


_KEEPING: dict[type[Any], type[Any]] = {}


def _keeping_cancels(connection_class: type[Any]) -> type[Any]:
    """The connection class with ``_SendKeepsCancels``' send, made once per class."""
    if connection_class not in _KEEPING:
        name = f"CancelKeeping{connection_class.__name__}"
        _KEEPING[connection_class] = type(name, (_SendKeepsCancels, connection_class), {})
    return _KEEPING[connection_class]
