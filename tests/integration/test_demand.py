"""Demand-driven warming and stale-while-revalidate, against real Redis, S3 and Prefect and the fake
providers over the demo catalog.

Each test has a bucket of its own (object names carry no prefix): an author another test warmed
would otherwise be a cold hit here, not the miss the test needs.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import pytest

from bookwarm.cache.demand import hour_bucket
from bookwarm.cache.redis_client import make_redis
from bookwarm.cli.read_cmd import lookup
from bookwarm.keys import Keys
from bookwarm.providers.fake.runner import stats
from bookwarm.settings import resolve
from bookwarm.warming.review import ReviewStore
from flows.warm_demand import warm_demand
from flows.warm_popular import warm_popular_authors


@pytest.fixture
def demand_env(flow_env, monkeypatch):
    """flow_env with a bucket of its own."""
    monkeypatch.setenv("BOOKWARM_S3_BUCKET", f"demand-{uuid.uuid4().hex[:12]}")
    return resolve()


def _keys(settings) -> Keys:
    return Keys(settings.redis.key_prefix)


async def _record_by_hand(settings, name: str, key: str, times: int) -> None:
    """What docs/cache-contract.md tells a reader in any language to send on a miss."""
    client = make_redis(settings.redis.url)
    hour = datetime.now(UTC).strftime("%Y%m%d%H")
    prefix = settings.redis.key_prefix
    try:
        for _ in range(times):
            await client.zincrby(f"{prefix}demand:authors:{hour}", 1, key)
            await client.hsetnx(f"{prefix}demand:names:{hour}", key, name)
            await client.expire(f"{prefix}demand:authors:{hour}", 7 * 86400)
            await client.expire(f"{prefix}demand:names:{hour}", 7 * 86400)
    finally:
        await client.aclose()


async def _processed(settings, key: str) -> dict | None:
    client = make_redis(settings.redis.url)
    try:
        raw = await client.get(_keys(settings).processed(key))
        return json.loads(raw) if raw else None
    finally:
        await client.aclose()


async def test_misses_recorded_by_lookup_and_by_hand_are_warmed_most_missed_first(demand_env, fake_providers):
    for _ in range(3):
        assert (await lookup(demand_env, "author", "Neil Gaiman"))[1] == "miss"
    await _record_by_hand(demand_env, "Terry Pratchett", "terry-pratchett", 2)  # a reader in another language
    assert (await lookup(demand_env, "author", "Peter Straub"))[1] == "miss"  # asked once: over the bound
    for _ in range(50):
        await lookup(demand_env, "author", "Unknown")  # junk: volume is not demand
    client = make_redis(demand_env.redis.url)
    hour = hour_bucket(time.time())
    try:
        bucket = _keys(demand_env).demand_authors(hour)
        assert await client.zscore(bucket, "neil-gaiman") == 3
        assert 0 < await client.ttl(bucket) <= 7 * 86400  # buckets expire by themselves
        assert 0 < await client.ttl(_keys(demand_env).demand_names(hour)) <= 7 * 86400
    finally:
        await client.aclose()

    summary = await warm_demand(max_authors=2, max_depth=0)

    assert summary["status"] == "completed", summary
    assert summary["authors_queued"] == 2 and summary["authors_warmed"] == 2
    plan = summary["demand"]
    assert plan["asked"] == 3 and plan["over_budget"] == 1  # "unknown" never ranked
    assert await _processed(demand_env, "neil-gaiman") and await _processed(demand_env, "terry-pratchett")
    assert await _processed(demand_env, "peter-straub") is None
    assert await _processed(demand_env, "unknown") is None
    bibliography, tier, _, stale = await lookup(demand_env, "author", "Terry Pratchett")
    assert tier == "hot" and not stale and "Guards! Guards!" in {w["title"] for w in bibliography["works"]}

    again = await warm_demand(max_authors=2, max_depth=0)  # the next hour: the fresh are left alone
    assert again["demand"]["fresh"] == 2 and again["authors_queued"] == 1  # Peter Straub's turn


async def test_a_missed_isbn_is_warmed_as_its_author(demand_env, fake_providers):
    assert (await lookup(demand_env, "isbn", "978-0-441-00942-8"))[1] == "miss"  # Alastair Reynolds

    summary = await warm_demand(max_depth=0)

    assert summary["authors_warmed"] == 1 and summary["demand"]["isbns_asked"] == 1
    record = await _processed(demand_env, "alastair-reynolds")
    assert record and record["openlibrary_key"] == "OL4A"
    _, tier, entry, _ = await lookup(demand_env, "isbn", "9780441009428")
    assert tier == "hot" and entry["author"]["key"] == "alastair-reynolds"


async def test_a_stale_entry_is_served_marked_and_refreshed_by_the_next_run(demand_env, fake_providers):
    await warm_popular_authors(names=["Stephen King"], max_depth=0)
    keys = _keys(demand_env)
    week_ago = datetime.fromtimestamp(time.time() - 8 * 86400, UTC).isoformat(timespec="seconds")
    client = make_redis(demand_env.redis.url)
    try:  # eight days pass
        entry = json.loads(await client.get(keys.author("stephen-king")))
        await client.set(keys.author("stephen-king"), json.dumps({**entry, "warmed_at": week_ago}), ex=3600)
        marker = json.loads(await client.get(keys.processed("stephen-king")))
        await client.set(keys.processed("stephen-king"), json.dumps({**marker, "last_warmed": week_ago}))
    finally:
        await client.aclose()

    bibliography, tier, _, stale = await lookup(demand_env, "author", "Stephen King")
    assert tier == "hot" and stale and bibliography["works"]  # served: a reader never waits for a provider

    summary = await warm_demand(max_depth=0)

    assert summary["authors_warmed"] == 1 and summary["authors_skipped"] == 0, summary
    bibliography, _, _, stale = await lookup(demand_env, "author", "Stephen King")
    assert not stale and bibliography["warmed_at"] > week_ago
    assert (await _processed(demand_env, "stephen-king"))["last_warmed"] > week_ago


async def test_blocked_and_unknown_names_are_not_asked_again(demand_env, fake_providers):
    client = make_redis(demand_env.redis.url)
    try:
        await ReviewStore(client, _keys(demand_env), 3600).block("nora-roberts")
    finally:
        await client.aclose()
    await lookup(demand_env, "author", "Nora Roberts")
    await lookup(demand_env, "author", "Zygmunt Nobody")  # OpenLibrary knows no one of that name

    first = await warm_demand(max_depth=0)
    assert first["demand"]["blocked"] == 1 and first["authors_unknown"] == 1
    asked_before = dict(stats(fake_providers)["openlibrary"]["asked"])

    await lookup(demand_env, "author", "Zygmunt Nobody")  # asked again: its negative entry answers
    second = await warm_demand(max_depth=0)

    assert second["demand"]["negative"] == 1 and second["demand"]["blocked"] == 1
    assert second["authors_queued"] == 0
    assert stats(fake_providers)["openlibrary"]["asked"] == asked_before  # no call spent on either


async def test_the_days_openlibrary_share_bounds_every_run(demand_env, fake_providers, monkeypatch):
    """A flood of misses cannot spend more than warm-demand's share of OpenLibrary's day."""
    monkeypatch.setenv("BOOKWARM_OPENLIBRARY_DAILY_QUOTA", "1000")
    monkeypatch.setenv("BOOKWARM_DEMAND_OPENLIBRARY_SHARE", "0.001")  # 1 call: 5 authors at 0.2
    for name in ("Neil Gaiman", "Terry Pratchett", "Stephen Baxter", "Alastair Reynolds", "Stephen King"):
        await lookup(demand_env, "author", name)
        await lookup(demand_env, "author", name)
    for name in ("Peter Straub", "Nora Roberts", "Haruki Murakami"):
        await lookup(demand_env, "author", name)

    first = await warm_demand(max_depth=0)
    assert first["authors_queued"] == 5 and first["demand"]["over_budget"] == 3
    second = await warm_demand(max_depth=0)  # the share is spent for today
    assert second["demand"]["calls_left"] == 0 and second["authors_queued"] == 0


async def test_a_scheduled_popular_run_adds_the_top_of_demand(demand_env, fake_providers):
    await lookup(demand_env, "author", "Peter Straub")  # on no popular list

    summary = await warm_popular_authors(max_depth=0)  # as its schedule runs it: no names

    assert summary["status"] == "completed"
    assert (await _processed(demand_env, "peter-straub"))["status"] == "warmed"


def test_the_cli_records_a_miss_and_warm_demand_warms_it(demand_env, fake_providers, tmp_path):
    import os
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "BOOKWARM_HOME": str(tmp_path)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bookwarm", *args], env=env, capture_output=True, text=True, timeout=300
        )

    missed = cli("lookup", "author", "Haruki Murakami")
    assert missed.returncode == 2 and "recorded as demand" in missed.stderr, missed.stderr
    warmed = cli("warm-demand", "--max-authors", "10", "--json")
    assert warmed.returncode == 0, warmed.stderr[-2000:]
    summary = json.loads(warmed.stdout)
    assert summary["authors_warmed"] == 1 and summary["demand"]["asked"] == 1
    found = cli("lookup", "author", "Haruki Murakami", "--json")
    assert found.returncode == 0, found.stderr[-2000:]
    read = json.loads(found.stdout)
    assert read["tier"] == "hot" and read["stale"] is False and read["warmed_at"]
