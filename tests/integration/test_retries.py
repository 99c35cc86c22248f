"""A task retry after a cache-tier failure writes what OpenLibrary already answered: the provider is
asked once. Real Redis, a real S3 store (and one at a dead port), the fake providers."""

from __future__ import annotations

import dataclasses

import pytest

from bookwarm.cache.objectstore import ObjectStore
from bookwarm.cache.tiered import TieredCache
from bookwarm.errors import CacheError
from bookwarm.providers.fake.runner import stats
from bookwarm.services.process import free_port
from bookwarm.warming.author import warm_one
from bookwarm.warming.context import WarmContext
from bookwarm.warming.shard import ClaimKeeper, Fetched


async def test_retry_after_a_cold_tier_failure_does_not_ask_openlibrary_again(
    provider_settings, fake_providers
):
    author = {"name": "Neil Gaiman", "key": "neil-gaiman", "isbns": []}
    dead_s3 = dataclasses.replace(provider_settings.s3, endpoint=f"127.0.0.1:{free_port()}")
    async with WarmContext(provider_settings) as ctx:
        working = ctx.cache
        token = await ctx.hot.claim(author["key"], 60)
        async with ClaimKeeper(ctx, {author["key"]: token}) as keeper:
            fetched = Fetched.not_asked()  # what the shard passes when its batch found nothing
            ctx.cache = TieredCache(ctx.hot, ObjectStore(dead_s3), hot_ttl_s=60)  # the store is down
            with pytest.raises(CacheError):
                await warm_one(ctx, author, 0, "job-r", fetched=fetched, keeper=keeper)
            asked_once = stats(fake_providers)["openlibrary"]["requests"]
            assert asked_once >= 1 and fetched.asked
            assert author["key"] in keeper.claims  # kept for the retry

            ctx.cache = working  # the store is back: the task's retry
            outcome = await warm_one(ctx, author, 0, "job-r", fetched=fetched, keeper=keeper, refetch=True)
        assert outcome.status == "warmed" and outcome.works == 5
        assert stats(fake_providers)["openlibrary"]["requests"] == asked_once
        assert author["key"] not in keeper.claims


async def test_retry_after_openlibrary_failed_asks_again(provider_settings, fake_providers):
    """The other side: what OpenLibrary did not answer is asked again on the retry."""
    from bookwarm.errors import ProviderUnavailable
    from bookwarm.providers.fake.runner import set_faults
    from bookwarm.providers.fake.server import PROVIDERS, Faults

    author = {"name": "Neil Gaiman", "key": "neil-gaiman", "isbns": []}
    set_faults(fake_providers, {p: Faults(down=p == "openlibrary") for p in PROVIDERS})
    settings = dataclasses.replace(
        provider_settings, openlibrary=dataclasses.replace(provider_settings.openlibrary, timeout_s=2.0)
    )
    async with WarmContext(settings) as ctx:
        token = await ctx.hot.claim(author["key"], 60)
        async with ClaimKeeper(ctx, {author["key"]: token}) as keeper:
            fetched = Fetched.not_asked()
            with pytest.raises(ProviderUnavailable):
                await warm_one(ctx, author, 0, "job-f", fetched=fetched, keeper=keeper)
            set_faults(fake_providers, {p: Faults() for p in PROVIDERS})
            outcome = await warm_one(ctx, author, 0, "job-f", fetched=fetched, keeper=keeper, refetch=True)
        assert outcome.status == "warmed"
        assert stats(fake_providers)["openlibrary"]["requests"] >= 1  # asked after the fault cleared


async def test_a_bug_fails_its_batch_loudly_instead_of_making_a_dead_letter(
    provider_settings, fake_providers
):
    """An exception that is not a failure of the world (here a KeyError: an author without a name,
    a programming error) is not retried nor recorded as a provider failure: the batch raises it (its
    task run fails, traceback and all) once its other authors are written, and the author stays
    uncounted for the level's next round, a resume or a redrive."""
    import asyncio

    from bookwarm.warming.batch import Item, warm_batch

    good = {"name": "Neil Gaiman", "key": "neil-gaiman", "isbns": []}
    broken = {"key": "no-name"}
    async with WarmContext(provider_settings) as ctx:
        async with ClaimKeeper(ctx, {}) as keeper:
            with pytest.raises(KeyError):
                await warm_batch(
                    ctx,
                    [Item(broken), Item(good)],
                    0,
                    "job-bug",
                    force=True,
                    keeper=keeper,
                    gate=asyncio.Semaphore(4),
                )
        assert await ctx.jobs.dead_letters("job-bug") == []
        assert await ctx.jobs.uncounted("job-bug", ["no-name", "neil-gaiman"]) == {"no-name"}
