"""One provider session per run: pooled clients, Redis limiters and circuit breakers, created once
and used by every author of the run, on one event loop (never shared across threads).

Warming uses ``ol_batches`` (OpenLibrary in batches; bookwarm.warming.shard) and the Google Books
and ISBNdb clients for budgeted enrichment (bookwarm.warming.enrichment). `fetch(name)` is the
single-author view of `bookwarm providers fetch`: the three providers queried concurrently and
merged, a failing one making the bibliography partial.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar

import httpx
import redis.asyncio as aioredis

from bookwarm.cache.redis_client import make_redis
from bookwarm.errors import ProviderError
from bookwarm.keys import Keys
from bookwarm.parsing.names import author_key
from bookwarm.providers.google_books import GoogleBooksClient
from bookwarm.providers.http import CallStats, CircuitBreaker, ProviderHttp, RetryPolicy
from bookwarm.providers.isbndb import ISBNdbClient
from bookwarm.providers.limits import CappedLimiter, RedisClock, RedisLimiter
from bookwarm.providers.merge import merge
from bookwarm.providers.models import Bibliography, ProviderResult
from bookwarm.providers.openlibrary import OpenLibraryClient, user_agent
from bookwarm.providers.openlibrary_batch import OpenLibraryBatches
from bookwarm.providers.transport import AiohttpTransport
from bookwarm.settings import ProviderSettings, Settings

T = TypeVar("T")


LIVE_BACKLOG_S = 10.0  # a reader's call waits at most this for its share (the longest ?wait=); else not made


def budget(cfg: ProviderSettings) -> int:
    """The quota units bookwarm may spend a day: a share of the provider's quota (0 = unlimited)."""
    return int(cfg.daily_quota * cfg.quota_share) if cfg.daily_quota else 0


class ProviderSession:
    def __init__(
        self,
        settings: Settings,
        *,
        redis_client: aioredis.Redis | None = None,
        policy: RetryPolicy | None = None,
        core_only: bool = False,
        max_connections: int = 10,
        with_limits: bool = True,
        transport_factory: Callable[[], httpx.AsyncBaseTransport] | None = None,
        reader: bool = False,
    ) -> None:
        """``with_limits=False`` drops the Redis rate limits and quotas (no Redis is touched), and
        ``transport_factory`` replaces the aiohttp transport (e.g. by httpx's own, which respx
        mocks): only for tests of everything else against fakes."""
        self.settings = settings
        self.policy = policy or RetryPolicy()
        self.core_only = core_only
        self.max_connections = max_connections
        self.with_limits = with_limits
        self.transport_factory = transport_factory
        self.reader = reader  # the read API's live fetches: OpenLibrary within BOOKWARM_API_LIVE_SHARE
        self._own_redis = redis_client is None
        self.redis = redis_client or make_redis(settings.redis.url, ride_out_s=settings.redis.ride_out_s)
        self.keys = Keys(settings.redis.key_prefix)
        self._clients: list[httpx.AsyncClient] = []
        self.http: dict[str, ProviderHttp] = {}
        self.clock = RedisClock()  # shared by the limiters: one Redis, one clock

    async def __aenter__(self) -> ProviderSession:
        s = self.settings
        if self.with_limits:
            await self.clock.calibrate(self.redis)  # now, before a busy event loop delays the replies
        headers = {"User-Agent": user_agent(s.ingest.contact_email), "Accept": "application/json"}
        self.http["openlibrary"] = self._provider("openlibrary", s.openlibrary, headers)
        self.http["google_books"] = self._provider("google_books", s.google_books, headers)
        isbndb_key = s.isbndb.api_key.get_secret_value() if s.isbndb.api_key else None
        if isbndb_key:
            self.http["isbndb"] = self._provider("isbndb", s.isbndb, {**headers, "Authorization": isbndb_key})
        self.openlibrary = OpenLibraryClient(self.http["openlibrary"])
        self.ol_batches = OpenLibraryBatches(self.http["openlibrary"], key_batch=s.openlibrary.batch)
        google_key = s.google_books.api_key.get_secret_value() if s.google_books.api_key else None
        self.google = GoogleBooksClient(
            self.http["google_books"], api_key=google_key, max_pages=s.google_books.max_pages
        )
        self.isbndb = (
            ISBNdbClient(self.http["isbndb"], max_pages=s.isbndb.max_pages, counting=s.isbndb.counting)
            if isbndb_key
            else None
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.gather(*(c.aclose() for c in self._clients), return_exceptions=True)
        if self._own_redis:
            await self.redis.aclose()

    def _provider(self, name: str, cfg: ProviderSettings, headers: dict[str, str]) -> ProviderHttp:
        client = httpx.AsyncClient(
            base_url=cfg.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(cfg.timeout_s),
            transport=self._transport(),
        )
        self._clients.append(client)
        limiter: RedisLimiter | CappedLimiter | None = (
            RedisLimiter(
                self.redis,
                self.keys,
                name,
                rate_per_s=cfg.rate_per_s,
                burst=cfg.burst,
                daily_quota=budget(cfg),
                clock=self.clock,
            )
            if self.with_limits
            else None
        )
        if self.reader and name == "openlibrary" and isinstance(limiter, RedisLimiter) and cfg.rate_per_s > 0:
            api = self.settings.api
            cap = RedisLimiter(
                self.redis,
                self.keys,
                f"{name}-live",
                rate_per_s=cfg.rate_per_s * api.live_share,
                daily_quota=api.live_daily_calls,
                max_wait_s=LIVE_BACKLOG_S,
                clock=self.clock,
            )
            limiter = CappedLimiter(cap, limiter)
        return ProviderHttp(name, client, limiter=limiter, breaker=CircuitBreaker(), policy=self.policy)

    def _transport(self) -> httpx.AsyncBaseTransport:
        if self.transport_factory is not None:
            return self.transport_factory()
        # Keep-alive below the usual 5 s server idle timeout: no reuse of a socket the server is closing.
        return AiohttpTransport(max_connections=self.max_connections, keepalive_s=4.0)

    async def fetch(self, name: str) -> Bibliography:
        """The merged bibliography of one author, providers queried concurrently."""
        stats = CallStats()
        ol_task = self._guard("openlibrary", self.openlibrary.fetch(name, stats))
        others = [self._guard("google_books", self.google.fetch(name, stats))]
        if self.isbndb is not None:
            others.append(self._guard("isbndb", self.isbndb.fetch(name, stats)))
        ol_outcome, other_results = await asyncio.gather(ol_task, asyncio.gather(*others))
        identity, ol_result = ol_outcome if isinstance(ol_outcome, tuple) else (None, ol_outcome)
        results = [ol_result, *other_results]
        if self.isbndb is None:
            results.append(ProviderResult("isbndb", ok=False, skipped="no API key configured"))
        return merge(name, author_key(name), identity, results, stats, core_only=self.core_only)

    @staticmethod
    async def _guard(provider: str, coro: Awaitable[T]) -> T | ProviderResult:
        try:
            return await coro
        except ProviderError as exc:
            return ProviderResult(provider, ok=False, complete=False, error=str(exc))
