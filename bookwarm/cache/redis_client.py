"""The one way bookwarm opens Redis: a *blocking* pool, so hundreds of concurrent authors wait
for a free connection instead of failing with MaxConnectionsError (seen at 150 concurrent
limiter calls with redis-py's default pool). One client per run and event loop."""

from __future__ import annotations

import redis.asyncio as aioredis

from bookwarm.errors import ConfigError


def make_redis(url: str | None, *, max_connections: int = 64) -> aioredis.Redis:
    if not url:
        raise ConfigError("Redis is not configured: set BOOKWARM_REDIS_URL (or run `bookwarm services up`)")
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=60, socket_connect_timeout=5, health_check_interval=30
    )
    return aioredis.Redis(connection_pool=pool)
