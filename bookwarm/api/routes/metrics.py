"""`GET /metrics`: the API's Prometheus metrics (bookwarm.api.metrics)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from bookwarm.api.metrics import metrics_response

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics: requests, reads by tier, misses, live fetches, latency")
async def metrics() -> Response:
    return metrics_response()
