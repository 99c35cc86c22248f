"""`/metrics` counts what the test did to a real API process: requests by route template, reads by
tier, live fetches started and joined, 202s, demand; labels never carry a raw path or name."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.api.conftest import Api


def samples(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{api.url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_count_what_was_asked(api: Api, fake_providers: int):
    from bookwarm.providers.fake.runner import set_faults
    from bookwarm.providers.fake.server import PROVIDERS, Faults

    before = samples(api)
    # OpenLibrary holds its answer about Peter Straub for a second, so that his 5 readers overlap
    # (under load they once came one after the other, and none joined another's fetch). A joined
    # reader is counted only when its answer comes: nothing to watch for before the hold ends.
    held = Faults(hold_when_asked=["Peter Straub"], hold_max_s=1.0)
    set_faults(fake_providers, {p: Faults() for p in PROVIDERS} | {"openlibrary": held})

    async def ask() -> None:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
            for _ in range(3):
                await client.get("/v1/authors/Neil Gaiman")  # hot
            await client.get(
                "/v1/authors/Totally Unknown Person", params={"wait": 0}
            )  # miss: 202, live started
            await asyncio.gather(
                *(client.get("/v1/authors/Peter Straub", params={"wait": 10}) for _ in range(5))
            )
            await client.get("/v1/authors/=cmd|Qx9Mark")  # refused
            await client.get("/no/such/Qx9Mark")

    try:
        asyncio.run(ask())
    finally:
        set_faults(fake_providers, {p: Faults() for p in PROVIDERS})
    after = samples(api)
    route = "/v1/authors/{name}"
    assert (
        delta(before, after, "bookwarm_api_requests_total", route=route, method="GET", status="200") >= 3 + 5
    )
    assert delta(before, after, "bookwarm_api_requests_total", route=route, method="GET", status="202") == 1
    assert delta(before, after, "bookwarm_api_requests_total", route=route, method="GET", status="400") == 1
    assert (
        delta(before, after, "bookwarm_api_requests_total", route="unmatched", method="GET", status="404")
        == 1
    )
    assert delta(before, after, "bookwarm_api_reads_total", kind="author", tier="hot") >= 3
    assert delta(before, after, "bookwarm_api_reads_total", kind="author", tier="live") >= 1, [
        (k, v, before.get(k)) for k, v in after.items() if "reads" in k[0] or "live" in k[0]
    ]
    assert delta(before, after, "bookwarm_api_accepted_total", kind="author") == 1
    assert delta(before, after, "bookwarm_api_live_fetches_total", result="started") == 2  # two authors
    assert (
        delta(before, after, "bookwarm_api_live_fetches_total", result="joined") == 4
    )  # Straub's other 4 readers
    assert delta(before, after, "bookwarm_api_demand_recorded_total", kind="author") >= 2
    assert delta(before, after, "bookwarm_api_request_seconds_count", route=route) >= 10
    labels = {value for (_, pairs) in after for _, value in pairs}
    assert not [v for v in labels if "Qx9Mark" in v or "Gaiman" in v]
