"""The one retry layer for provider HTTP.

Per attempt: circuit breaker -> limiter (rate + quota, counted before the call) -> request ->
classify. Retried: 429 (honouring Retry-After), 5xx, timeouts, connection errors and malformed
JSON, with exponential backoff and full jitter, bounded in attempts and total time. Never retried:
404 (returned as None), other 4xx (ProviderRejected), an exhausted quota (QuotaExhausted).
httpx errors are mapped to bookwarm's error tree here and nowhere else. Logs name the provider,
author and attempt, and never the query string or headers (that is where API keys travel).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from bookwarm.errors import ProviderRejected, ProviderUnavailable

log = logging.getLogger("bookwarm.providers")
LARGE_BODY = 256 * 1024


class Limiter(Protocol):
    async def acquire(self, units: int = 1) -> int: ...


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    max_total_s: float = 60.0


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failed calls; after ``cooldown_s`` lets one call try."""

    def __init__(
        self, threshold: int = 5, cooldown_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ):
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if self.clock() - self.opened_at >= self.cooldown_s:
            self.opened_at = self.clock()  # half-open: this caller is the trial; others wait a cool-down
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def record_failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = self.clock()

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None


@dataclass
class CallStats:
    """What one author's fetch cost, per provider: attempts, 429s received, time spent."""

    calls: dict[str, int] = field(default_factory=dict)
    rate_limited: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, provider: str, *, calls: int = 0, rate_limited: int = 0, seconds: float = 0.0) -> None:
        self.calls[provider] = self.calls.get(provider, 0) + calls
        self.rate_limited[provider] = self.rate_limited.get(provider, 0) + rate_limited
        self.seconds[provider] = self.seconds.get(provider, 0.0) + seconds


class ProviderHttp:
    """One provider's pooled client with its limiter, breaker and retry policy; one per run."""

    def __init__(
        self,
        provider: str,
        client: httpx.AsyncClient,
        *,
        limiter: Limiter | None = None,
        breaker: CircuitBreaker | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.provider = provider
        self.client = client
        self.limiter = limiter
        self.breaker = breaker or CircuitBreaker()
        self.policy = policy or RetryPolicy()
        self._sleep = sleep

    async def get_json(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        author: str,
        stats: CallStats | None = None,
    ) -> Any | None:
        """The decoded JSON body, or None for 404. Raises ProviderUnavailable/ProviderRejected/QuotaExhausted."""
        return await self.request_json("GET", path, params, author=author, stats=stats)

    async def post_json(
        self, path: str, body: Any, *, author: str, stats: CallStats | None = None, units: int = 1
    ) -> Any | None:
        """POST a JSON body; ``units`` is what the call costs against the daily quota."""
        return await self.request_json("POST", path, None, body=body, author=author, stats=stats, units=units)

    async def request_json(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        body: Any = None,
        author: str,
        stats: CallStats | None = None,
        units: int = 1,
    ) -> Any | None:
        stats = stats if stats is not None else CallStats()
        started = time.monotonic()
        last_error = "no attempt made"
        try:
            for attempt in range(1, self.policy.max_attempts + 1):
                if not self.breaker.allow():
                    raise ProviderUnavailable(self.provider, "circuit open after repeated failures; skipped")
                if self.limiter is not None:
                    await self.limiter.acquire(units)
                stats.add(self.provider, calls=1)
                delay, last_error, result = await self._attempt(method, path, params, body, stats, attempt)
                if delay is None:
                    self.breaker.record_success()
                    return result
                elapsed = time.monotonic() - started
                if attempt == self.policy.max_attempts or elapsed + delay > self.policy.max_total_s:
                    break
                log.warning(
                    "%s: %s for author %r (attempt %d/%d), retrying in %.1fs",
                    self.provider,
                    last_error,
                    author,
                    attempt,
                    self.policy.max_attempts,
                    delay,
                )
                await self._sleep(delay)
            self.breaker.record_failure()
            raise ProviderUnavailable(self.provider, f"{last_error}; gave up after {attempt} attempts")
        finally:
            stats.add(self.provider, seconds=time.monotonic() - started)

    async def _attempt(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        body: Any,
        stats: CallStats,
        attempt_no: int,
    ) -> tuple[float | None, str, Any]:
        """(None, _, body) on success; (delay, reason, None) when worth retrying."""
        try:
            response = await self.client.request(method, path, params=params, json=body)
        except httpx.TimeoutException:
            return self._backoff(attempt_no), "timeout", None
        except httpx.TransportError as exc:
            return self._backoff(attempt_no), f"connection error ({type(exc).__name__})", None
        status = response.status_code
        if status == 404:
            return None, "", None
        if status == 429:
            stats.add(self.provider, rate_limited=1)
            retry_after = _retry_after(response.headers.get("retry-after"))
            delay = (
                retry_after + random.uniform(0, 0.25)
                if retry_after is not None
                else self._backoff(attempt_no)
            )
            return min(delay, self.policy.max_delay_s), "429 rate limited", None
        if status >= 500:
            return self._backoff(attempt_no), f"HTTP {status}", None
        if status >= 400:
            self.breaker.record_failure()
            raise ProviderRejected(self.provider, f"HTTP {status} for {path}: {_error_message(response)}")
        try:
            if len(response.content) > LARGE_BODY:  # a 1,000-work page: parse off the event loop
                return None, "", await asyncio.to_thread(json.loads, response.content)
            return None, "", response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._backoff(attempt_no), "malformed JSON", None

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.policy.max_delay_s, self.policy.base_delay_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _error_message(response: httpx.Response) -> str:
    """The provider's own error text (no request details: those may carry keys)."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "error"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error.get("status") or "error")[:200]
        return str(
            body.get("error_message") or body.get("errorMessage") or body.get("message") or error or "error"
        )[:200]
    return "error"
