"""An author another run finishes between our look at its marker and our claim. The other run
writes the author and releases its claim in one step, so our claim then succeeds on an author that
is done: without a second look it is fetched again (seen once: two read-API processes, fifty
concurrent misses, the author's works asked twice). Through a real Redis behind a proxy that lets
the other run (a real warm, on Redis directly) finish exactly as our claim is sent."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bookwarm.parsing.names import author_key
from bookwarm.providers.fake.runner import stats
from bookwarm.settings import Settings
from bookwarm.warming.author import warm_one
from bookwarm.warming.context import WarmContext
from bookwarm.warming.shard import plan_shard
from tests.fakes.tcp_proxy import TcpProxy

T = TypeVar("T")
CLAIM = b"\r\nNX\r\n"  # the claim's SET ... NX EX: no other command of a warm sends it


def author(name: str) -> dict[str, Any]:
    return {"name": name, "key": author_key(name), "isbns": []}


def works_asked(port: int) -> int:
    return sum(n for k, n in stats(port)["openlibrary"]["asked"].items() if k.startswith("OL"))


async def with_a_finish_before_our_claim(
    settings: Settings, name: str, ours: Callable[[WarmContext], Awaitable[T]]
) -> T:
    """``ours`` on a context whose Redis is behind the proxy; the other run warms ``name`` on Redis
    directly the moment our first claim reaches the proxy."""
    real = urlsplit(settings.redis.url)
    job = f"race-{uuid.uuid4().hex[:8]}"
    async with WarmContext(settings) as other:

        async def other_run_finishes() -> None:
            done = await warm_one(other, author(name), 0, job)
            assert done.status == "warmed", done

        proxy = TcpProxy(real.hostname or "127.0.0.1", real.port or 6379, before=(CLAIM, other_run_finishes))
        port = await proxy.start()
        proxied = settings.redis.url.replace(f"{real.hostname}:{real.port}", f"127.0.0.1:{port}")
        try:
            async with WarmContext(
                dataclasses.replace(settings, redis=dataclasses.replace(settings.redis, url=proxied))
            ) as ctx:
                result = await ours(ctx)
        finally:
            await proxy.stop()
        assert proxy.acted == 1, "the other run did not finish before our claim"
        assert not await other.hot.claimed([author_key(name)]), "a claim was left behind"
        return result


def test_a_single_claim_on_an_author_finished_meanwhile_uses_its_result(provider_settings, fake_providers):
    before = works_asked(fake_providers)
    outcome = asyncio.run(
        with_a_finish_before_our_claim(
            provider_settings,
            "Ursula K. Le Guin",
            lambda ctx: warm_one(ctx, author("Ursula K. Le Guin"), 0, "ours"),
        )
    )
    assert outcome.status == "skipped" and outcome.works > 0, outcome
    assert works_asked(fake_providers) - before == 1  # the other run's fetch, and not ours


def test_a_shard_plan_skips_an_author_finished_meanwhile_and_gives_its_claim_back(
    provider_settings, fake_providers
):
    name, other = "Neil Gaiman", "Terry Pratchett"

    async def plan(ctx: WarmContext) -> Any:
        shard = await plan_shard(ctx, [author(name), author(other)], 0, force=False)
        await ctx.hot.release_many(shard.claimed)
        return shard

    shard = asyncio.run(with_a_finish_before_our_claim(provider_settings, name, plan))
    assert author_key(name) in shard.fresh and author_key(name) not in shard.claimed
    assert author_key(other) in shard.claimed  # the author nobody finished is still ours to fetch
