"""Everything one run (one subflow, one event loop) needs, created once: Redis, both cache tiers,
the provider session with its limiters and breakers, the job store. Never shared across threads."""

from __future__ import annotations

import asyncio
from types import TracebackType

from bookwarm.cache.demand import Demand
from bookwarm.cache.hot import HotCache
from bookwarm.cache.objectstore import ObjectStore
from bookwarm.cache.redis_client import make_redis
from bookwarm.cache.tiered import TieredCache
from bookwarm.keys import Keys
from bookwarm.providers.http import RetryPolicy
from bookwarm.providers.session import ProviderSession
from bookwarm.settings import Settings
from bookwarm.warming.jobs import JobStore
from bookwarm.warming.review import ReviewStore
from bookwarm.warming.run_ends import RunEnds


class WarmContext:
    def __init__(
        self,
        settings: Settings,
        *,
        core_only: bool = False,
        claim_ttl_s: int | None = None,
        policy: RetryPolicy | None = None,
        with_providers: bool = True,
        ensure_bucket: bool = True,
        reader: bool = False,
    ) -> None:
        self.settings = settings
        self.core_only = core_only
        self.claim_ttl_s = claim_ttl_s or settings.redis.claim_ttl_s
        self.policy = policy
        self.with_providers = with_providers
        self.ensure_bucket = ensure_bucket  # a reader (the API) starts with the store down, and serves Redis
        self.reader = reader  # the read API: live fetches within their share of OpenLibrary (ProviderSession)
        self.keys = Keys(settings.redis.key_prefix)
        self.providers: ProviderSession | None = None

    async def __aenter__(self) -> WarmContext:
        self.redis = make_redis(
            self.settings.redis.url, max_connections=128, ride_out_s=self.settings.redis.ride_out_s
        )
        self.hot = HotCache(self.redis, self.keys)
        # A reader answers within seconds, so a store that hangs is a 503, not a wait of minutes.
        patience = self.settings.api.cold_read_s if self.reader else None
        self.cold = ObjectStore(self.settings.s3, read_patience_s=patience)
        if self.ensure_bucket:
            await asyncio.to_thread(self.cold.ensure_bucket)
        self.demand = Demand(self.redis, self.keys, self.settings.redis.demand_keep_days)
        self.cache = TieredCache(
            self.hot,
            self.cold,
            hot_ttl_s=self.settings.redis.hot_ttl_s,
            demand=self.demand,
            soft_ttl_s=self.settings.redis.soft_ttl_s,
        )
        self.jobs = JobStore(
            self.redis,
            self.keys,
            self.settings.redis.job_ttl_s,
            self.settings.redis.job_heartbeat_s,
            patience_s=self.settings.redis.handover_patience_s,
        )
        self.reviews = ReviewStore(self.redis, self.keys, self.settings.redis.job_ttl_s)
        self.run_ends = RunEnds(self.redis, self.keys, self.settings.redis.job_ttl_s)
        if self.with_providers:
            self.providers = await ProviderSession(
                self.settings,
                redis_client=self.redis,
                policy=self.policy,
                core_only=self.core_only,
                reader=self.reader,
            ).__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.providers is not None:
            await self.providers.__aexit__(exc_type, exc, tb)
        await self.redis.aclose()
        await self.cold.aclose()
