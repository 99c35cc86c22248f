"""Claims that survive the client's own retry. When Redis drops a connection after a command
landed but before its reply (a blip, a failover), redis-py runs the pipeline again; a claim's
SET NX that landed the first time is then refused by the claim itself. Through a real Redis
behind a proxy that drops exactly that reply, the claim is still ours, not an orphan that lapses
after its TTL while its author waits on it (seen once as a claim left after a Redis blip)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from bookwarm.cache.hot import HotCache
from bookwarm.cache.redis_client import make_redis
from bookwarm.keys import Keys
from tests.fakes.tcp_proxy import TcpProxy


def test_a_claim_whose_reply_was_lost_is_still_ours(settings) -> None:
    async def run() -> tuple[str | None, bytes | None, dict[str, str | None], int]:
        real = urlsplit(settings.redis.url)
        proxy = TcpProxy(real.hostname or "127.0.0.1", real.port or 6379, drop_reply_after=b"NX")
        port = await proxy.start()
        url = settings.redis.url.replace(f"{real.hostname}:{real.port}", f"127.0.0.1:{port}")
        keys = Keys("claims-on-a-blip:")
        client = make_redis(url, ride_out_s=5.0)
        hot = HotCache(client, keys)
        try:
            token = await hot.claim("ursula-k-le-guin", 60)
            stored = await client.get(keys.claim("ursula-k-le-guin"))
            await client.set(keys.claim("octavia-butler"), "another run's token", ex=60)
            others = await hot.claim_many(["octavia-butler", "samuel-delany"], 60)
            return token, stored, others, proxy.dropped
        finally:
            await client.delete(
                *(keys.claim(k) for k in ("ursula-k-le-guin", "octavia-butler", "samuel-delany"))
            )
            await client.aclose()
            await proxy.stop()

    token, stored, others, dropped = asyncio.run(run())
    assert dropped == 1  # the reply to the claim's SET was lost, and the client ran it again
    assert token is not None and stored == token.encode()  # ours, not refused by itself
    assert others["octavia-butler"] is None  # a claim another run holds is still refused
    assert others["samuel-delany"] is not None
