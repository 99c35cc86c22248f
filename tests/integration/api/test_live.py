"""A miss answered live: the API fetches the author from (fake) OpenLibrary through the warm's own
provider code, limiter and write path, within its wait; one fetch however many ask, on any API
process; a 202 past the wait that the fetch then fills; live calls within their own share and budget
of OpenLibrary's one limiter, so a warm running beside them meets no 429."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from bookwarm.keys import Keys
from bookwarm.providers.fake.runner import set_faults, stats
from bookwarm.providers.fake.server import PROVIDERS, Faults
from bookwarm.providers.limits import utc_day
from bookwarm.services.process import stop
from bookwarm.settings import resolve
from tests.integration.api.conftest import Api, start_api, warm
from tests.integration.api.contract_reader import read_author
from tests.integration.test_cache_contract import check, validators


def works_asked(port: int, before: dict[str, int]) -> dict[str, int]:
    """OpenLibrary author keys whose works were asked since ``before``, and how often."""
    now = stats(port)["openlibrary"]["asked"]
    return {k: n - before.get(k, 0) for k, n in now.items() if k.startswith("OL") and n > before.get(k, 0)}


def test_a_miss_is_fetched_live_written_as_a_warm_writes_it_and_then_hot(api: Api, fake_providers):
    s3 = api.settings.s3
    with api.client() as client:
        live = client.get("/v1/authors/Alastair Reynolds")
        again = client.get("/v1/authors/Alastair Reynolds")
    assert live.status_code == 200 and live.headers["x-bookwarm-tier"] == "live", live.text
    assert again.headers["x-bookwarm-tier"] == "hot" and again.content == live.content
    # a reader written from the contract alone finds it in Redis, and valid
    value, tier = read_author(
        api.settings.redis.url,
        api.settings.redis.key_prefix,
        s3.endpoint,
        s3.access_key,
        s3.secret_key.get_secret_value() if s3.secret_key else "",
        s3.bucket,
        "Alastair Reynolds",
    )
    assert tier == "hot" and value == json.loads(live.content)
    check(validators()["author"], value, "author:alastair-reynolds")


def test_fifty_concurrent_misses_on_two_processes_cause_one_fetch(api: Api, fake_providers, tmp_path):
    second_url, second = start_api(api.env, tmp_path / "second.log")
    before = stats(fake_providers)["openlibrary"]["asked"]

    async def ask() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.get(
                        f"{(api.url, second_url)[i % 2]}/v1/authors/Haruki Murakami", params={"wait": 10}
                    )
                    for i in range(50)
                )
            )

    try:
        answers = asyncio.run(ask())
    finally:
        stop(second.pid, 5.0)
    assert [a.status_code for a in answers] == [200] * 50, {a.status_code for a in answers}
    assert len({a.content for a in answers}) == 1
    assert list(works_asked(fake_providers, before).values()) == [1]  # one author's works, asked once


def test_past_the_wait_it_is_202_and_the_fetch_still_lands(api: Api, fake_providers):
    before = stats(fake_providers)["openlibrary"]["asked"]
    with api.client() as client:
        accepted = client.get("/v1/authors/Stephen Baxter", params={"wait": 0})
        assert accepted.status_code == 202 and 0 < int(accepted.headers["retry-after"]) <= 5, accepted.text
        for _ in range(200):  # the fetch goes on after the reader's answer: poll for its result
            served = client.get("/v1/authors/Stephen Baxter", params={"wait": 0})
            if served.status_code == 200:
                break
            time.sleep(0.05)  # polling for the fetch's result, not a guess at its duration
    # a write puts the object first, then the hot tier (commit): a read between them finds it cold
    assert served.status_code == 200 and served.headers["x-bookwarm-tier"] in ("hot", "live", "cold")
    assert list(works_asked(fake_providers, before).values()) == [1]


def test_a_wait_out_of_range_is_422(api: Api):
    with api.client() as client:
        answer = client.get("/v1/authors/Nora Roberts", params={"wait": 60})
    assert answer.status_code == 422 and set(answer.json()) == {"error", "status"}


def test_live_calls_keep_to_their_share_and_budget_beside_a_warm(api: Api, fake_providers, tmp_path):
    """OpenLibrary at its real 3/s (the fake answers 429 above it): a warm at the real limit runs in
    this process while live reads go through an API of the same cache. No 429; every live call went
    through the readers' own limiter (its day's count), and with that budget spent a miss is 202."""
    env = {**api.env, "BOOKWARM_REDIS_PREFIX": f"share{tmp_path.name[-6:]}:", "BOOKWARM_OPENLIBRARY_RPS": "3"}
    settings = resolve(env)
    set_faults(
        fake_providers, {p: Faults() for p in PROVIDERS} | {"openlibrary": Faults(rate_per_s=3, burst=25)}
    )
    url, proc = start_api(env, tmp_path / "share.log")
    try:
        before = stats(fake_providers)["openlibrary"]

        async def both() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                warming = asyncio.create_task(
                    warm(settings, ["Neil Gaiman", "Terry Pratchett", "Stephen King", "Peter Straub"])
                )
                answers = [
                    await client.get(f"/v1/authors/{n}", params={"wait": 10})
                    for n in ("Nora Roberts", "Todd Barton")
                ]
                await warming
                return answers

        answers = asyncio.run(both())
        after = stats(fake_providers)["openlibrary"]
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        assert after["limit_429"] == before["limit_429"]  # no call over OpenLibrary's rate

        async def counted() -> int:
            from bookwarm.cache.redis_client import make_redis

            client = make_redis(settings.redis.url)
            try:
                raw = await client.get(Keys(settings.redis.key_prefix).quota("openlibrary-live", utc_day()))
                return int(raw or 0)
            finally:
                await client.aclose()

        assert asyncio.run(counted()) >= 2  # both live fetches' calls went through the readers' limiter
    finally:
        stop(proc.pid, 5.0)
        set_faults(fake_providers, {p: Faults() for p in PROVIDERS})

    # the day's budget for live calls spent: a miss is 202, no call made
    spent = {
        **env,
        "BOOKWARM_API_LIVE_DAILY_CALLS": "1",
        "BOOKWARM_REDIS_PREFIX": f"spent{tmp_path.name[-6:]}:",
    }
    url, proc = start_api(spent, tmp_path / "spent.log")
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            first = client.get("/v1/authors/John Tiffany", params={"wait": 10})
            second = client.get("/v1/authors/Jack Thorne", params={"wait": 10})
        assert first.status_code in (200, 202, 404) and second.status_code == 202, (first.text, second.text)
        assert "budget" in second.json()["detail"]
    finally:
        stop(proc.pid, 5.0)
