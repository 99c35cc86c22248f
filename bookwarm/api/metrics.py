"""The API's Prometheus metrics (`GET /metrics`): what a reading app sees, measured where it sees it.

Labels are route templates and fixed words only, never a raw path, a name or an ISBN (a hostile one
would reach every dashboard). With several worker processes (`bookwarm api --workers N`) each writes
its samples to ``PROMETHEUS_MULTIPROC_DIR`` (set by the command) and any process answers for all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from bookwarm.api.limits import Receive, Scope, Send

REQUESTS = Counter(
    "bookwarm_api_requests", "Requests by route template, method and status", ["route", "method", "status"]
)
LATENCY = Histogram(
    "bookwarm_api_request_seconds",
    "Time to answer, by route template",
    ["route"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
READS = Counter(
    "bookwarm_api_reads", "Author and ISBN reads by the tier that answered (miss: neither)", ["kind", "tier"]
)
STALE = Counter("bookwarm_api_stale_served", "Stale entries served (and recorded as demand)", ["kind"])
LIVE = Counter(
    "bookwarm_api_live_fetches",
    "Misses asked of OpenLibrary: started, or joined to one in flight",
    ["result"],
)
ACCEPTED = Counter("bookwarm_api_accepted", "202s: not cached, recorded as demand", ["kind"])
DEMAND = Counter("bookwarm_api_demand_recorded", "Reads recorded as demand (misses and stale hits)", ["kind"])

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware:
    """Counts and times every HTTP request by its route's template (pure ASGI: no per-request objects)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            REQUESTS.labels(route, method, str(status[0])).inc()
            LATENCY.labels(route).observe(time.perf_counter() - started)


def metrics_response() -> Response:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, directory)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
