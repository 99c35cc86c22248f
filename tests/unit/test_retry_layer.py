"""The one HTTP retry layer, against respx-mocked responses (no sockets)."""

from __future__ import annotations

import logging

import httpx
import pytest
import respx

from bookwarm.errors import ProviderRejected, ProviderUnavailable, QuotaExhausted
from bookwarm.providers.http import CallStats, CircuitBreaker, ProviderHttp, RetryPolicy

BASE = "https://provider.test"


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class CountingLimiter:
    """Counts acquires like the Redis limiter does: before every attempt."""

    def __init__(self, quota: int | None = None) -> None:
        self.acquired = 0
        self.quota = quota

    async def acquire(self, units: int = 1) -> int:
        if self.quota is not None and self.acquired >= self.quota:
            raise QuotaExhausted("test", "daily quota spent")
        self.acquired += 1
        return self.acquired


def make(policy: RetryPolicy | None = None, **kw):
    sleep = RecordingSleep()
    client = httpx.AsyncClient(base_url=BASE)
    http = ProviderHttp(
        "test", client, policy=policy or RetryPolicy(max_attempts=4, base_delay_s=0.1), sleep=sleep, **kw
    )
    return http, sleep


@respx.mock
async def test_429_honours_retry_after_then_succeeds():
    route = respx.get(f"{BASE}/x").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "3"}, json={"status": 429}),
            httpx.Response(200, json={"ok": True}),
        ]
    )
    limiter = CountingLimiter()
    http, sleep = make(limiter=limiter)
    stats = CallStats()
    assert await http.get_json("/x", author="A", stats=stats) == {"ok": True}
    assert route.call_count == 2
    assert 3.0 <= sleep.delays[0] <= 3.25
    assert stats.calls["test"] == 2 and stats.rate_limited["test"] == 1
    assert limiter.acquired == 2  # the failed call counted too


@respx.mock
@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500),
        httpx.Response(503),
        httpx.TimeoutException("t"),
        httpx.ConnectError("c"),
        httpx.Response(200, content=b'{"docs": ['),
    ],
)
async def test_transient_failures_are_retried(failure):
    respx.get(f"{BASE}/x").mock(side_effect=[failure, httpx.Response(200, json=[1])])
    http, sleep = make()
    assert await http.get_json("/x", author="A") == [1]
    assert len(sleep.delays) == 1


@respx.mock
async def test_attempts_are_bounded_and_backoff_grows():
    route = respx.get(f"{BASE}/x").mock(return_value=httpx.Response(500))
    http, sleep = make(RetryPolicy(max_attempts=4, base_delay_s=1.0, max_delay_s=100))
    with pytest.raises(ProviderUnavailable, match="gave up after 4 attempts"):
        await http.get_json("/x", author="A")
    assert route.call_count == 4
    assert [0.5 <= sleep.delays[0] <= 1, 1 <= sleep.delays[1] <= 2, 2 <= sleep.delays[2] <= 4] == [True] * 3


@respx.mock
async def test_total_time_budget_stops_retries():
    respx.get(f"{BASE}/x").mock(return_value=httpx.Response(429, headers={"Retry-After": "30"}))
    http, sleep = make(RetryPolicy(max_attempts=5, max_delay_s=60, max_total_s=10))
    with pytest.raises(ProviderUnavailable):
        await http.get_json("/x", author="A")
    assert sleep.delays == []  # a 30 s wait does not fit a 10 s budget


@respx.mock
async def test_404_is_none_and_other_4xx_are_not_retried():
    respx.get(f"{BASE}/missing").mock(return_value=httpx.Response(404, json={"error_message": "Not Found"}))
    bad = respx.get(f"{BASE}/bad").mock(
        return_value=httpx.Response(403, json={"error": {"message": "API key not valid"}})
    )
    http, sleep = make()
    assert await http.get_json("/missing", author="A") is None
    with pytest.raises(ProviderRejected, match="API key not valid"):
        await http.get_json("/bad", author="A")
    assert bad.call_count == 1 and sleep.delays == []


@respx.mock
async def test_quota_exhaustion_is_not_retried_and_network_errors_are_not_quota():
    route = respx.get(f"{BASE}/x").mock(side_effect=httpx.ConnectError("refused"))
    http, _ = make(limiter=CountingLimiter(quota=2))
    with pytest.raises(QuotaExhausted):  # 2 failed attempts spent the quota; the 3rd is refused
        await http.get_json("/x", author="A")
    assert route.call_count == 2
    http2, _ = make(RetryPolicy(max_attempts=2, base_delay_s=0.01), limiter=CountingLimiter(quota=100))
    with pytest.raises(ProviderUnavailable, match="connection error"):  # not QuotaExhausted
        await http2.get_json("/x", author="A")


@respx.mock
async def test_circuit_breaker_skips_a_failing_provider_until_cool_down():
    route = respx.get(f"{BASE}/x").mock(return_value=httpx.Response(503))
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown_s=30, clock=lambda: now[0])
    http, _ = make(RetryPolicy(max_attempts=1), breaker=breaker)
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await http.get_json("/x", author="A")
    calls = route.call_count
    with pytest.raises(ProviderUnavailable, match="circuit open"):
        await http.get_json("/x", author="B")
    assert route.call_count == calls  # skipped, no request
    now[0] = 31.0
    route.mock(return_value=httpx.Response(200, json={}))
    assert await http.get_json("/x", author="C") == {}
    assert not breaker.is_open


@respx.mock
async def test_logs_name_provider_author_attempt_and_never_the_key(caplog):
    respx.get(f"{BASE}/x").mock(side_effect=[httpx.Response(500), httpx.Response(200, json={})])
    http, _ = make()
    with caplog.at_level(logging.WARNING, logger="bookwarm.providers"):
        await http.get_json("/x", {"key": "SECRET-KEY-123"}, author="Neil Gaiman")
    text = caplog.text
    assert "test" in text and "Neil Gaiman" in text and "attempt 1/4" in text
    assert "SECRET-KEY-123" not in text
