"""A closed context leaves no connection open. A job opens a Redis pool and an object store per
shard; left to the garbage collector, their connections stayed open for the job's life (about a
thousand sockets by 22,500 authors of one job, found profiling the flow process's growth)."""

from __future__ import annotations

import asyncio

import psutil

from bookwarm.cache.objectstore import ObjectStore
from bookwarm.cache.redis_client import make_redis


def _sockets_to(port: int) -> int:
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def test_a_closed_redis_client_closes_its_connections(settings) -> None:
    port = int(settings.redis.url.rsplit(":", 1)[1].split("/")[0])

    async def run() -> tuple[int, int, int]:
        before = _sockets_to(port)
        client = make_redis(settings.redis.url)
        # ten commands that each hold a connection a moment: ten connections in the pool
        await asyncio.gather(*(client.blpop([f"nothing-{i}"], timeout=0.2) for i in range(10)))
        opened = _sockets_to(port)
        await client.aclose()
        return before, opened, _sockets_to(port)

    before, opened, after = asyncio.run(run())
    assert opened >= before + 10
    assert after == before


def test_a_closed_object_store_closes_its_connections(settings) -> None:
    port = int(settings.s3.endpoint.rsplit(":", 1)[1])
    before = _sockets_to(port)
    store = ObjectStore(settings.s3)
    store.ensure_bucket()

    async def writes_then_close() -> tuple[int, int]:
        await asyncio.gather(*(store.put_json(f"test/connections/{i}.json", {"i": i}) for i in range(8)))
        opened = _sockets_to(port)
        await store.aclose()
        return opened, _sockets_to(port)

    opened, after = asyncio.run(writes_then_close())
    assert opened > before
    assert after == before
