"""Refresh from OpenLibrary's change feed, against real Redis, S3 and Prefect and a fake OpenLibrary
of the test's own (its catalog changes: new works, merges) serving RecentChanges in its real format.
"""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bookwarm.cache.redis_client import make_redis
from bookwarm.cli.read_cmd import lookup
from bookwarm.keys import Keys
from bookwarm.providers.fake.runner import FakeProviders, provider_env, set_faults, stats
from bookwarm.providers.fake.server import PROVIDERS, Faults
from bookwarm.settings import resolve
from flows.refresh import refresh
from flows.warm_popular import warm_popular_authors
from tests.integration.conftest import CATALOG


@pytest.fixture
def changing(flow_env, tmp_path, monkeypatch):
    """(settings, port): a fake OpenLibrary whose catalog this test may change, and a bucket of its own."""
    catalog = tmp_path / "catalog.json"
    shutil.copy(CATALOG, catalog)
    runner = FakeProviders(tmp_path / "fake")
    port = runner.up(catalog, real_limits=False).port
    for name, value in provider_env(port).items():
        monkeypatch.setenv(name, value)
    for provider in ("OPENLIBRARY", "GOOGLE_BOOKS", "ISBNDB"):
        monkeypatch.setenv(f"BOOKWARM_{provider}_RPS", "500")
    monkeypatch.setenv("BOOKWARM_S3_BUCKET", f"refresh-{uuid.uuid4().hex[:12]}")
    try:
        yield resolve(), port
    finally:
        runner.down()


def _at(days_ago: int = 0) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _change(port: int, *changes: dict) -> None:
    httpx.post(
        f"http://127.0.0.1:{port}/_changes", json={"changes": list(changes)}, timeout=10
    ).raise_for_status()


def _titles(bibliography: dict) -> set[str]:
    return {w["title"] for w in bibliography["works"]}


async def _redis_get(settings, key: str) -> str | None:
    client = make_redis(settings.redis.url)
    try:
        raw = await client.get(key)
        return raw.decode() if raw else None
    finally:
        await client.aclose()


async def test_a_new_work_appears_after_one_refresh_and_uncached_changes_cost_nothing(changing):
    settings, port = changing
    await warm_popular_authors(names=["Stephen Baxter"], max_depth=0)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    _change(
        port,
        {
            "op": "add_work",
            "author": "OL3A",
            "title": "Xeelee: Vengeance",
            "isbn": ["9781473212770"],
            "timestamp": _at(1),
        },
        {"op": "edit_author", "author": "OL12A", "timestamp": _at(1)},  # Nora Roberts: nobody holds her
        {"op": "noise", "count": 5, "timestamp": _at(1)},
        {"op": "noise", "count": 3, "kind": "new-account", "timestamp": _at(1)},
    )
    asked_before = dict(stats(port)["openlibrary"]["asked"])

    summary = await refresh(since=yesterday)

    plan = summary["refresh"]
    assert summary["status"] == "completed" and summary["authors_warmed"] == 1, summary
    assert plan["days_read"] == [yesterday] and plan["feed_error"] is None
    assert plan["changesets"] == 7  # new-account ones are dropped by OpenLibrary itself
    bibliography, _, _, _ = await lookup(settings, "author", "Stephen Baxter")
    assert "Xeelee: Vengeance" in _titles(bibliography)
    asked = stats(port)["openlibrary"]["asked"]
    assert asked.get("OL12A", 0) == asked_before.get("OL12A", 0)  # the uncached author cost no call
    assert await _redis_get(settings, Keys(settings.redis.key_prefix).refresh_checkpoint()) == yesterday

    again = await refresh()  # from the checkpoint: yesterday is not read again
    assert again["refresh"]["start"] == datetime.now(UTC).date().isoformat()
    assert again["authors_queued"] == 0


async def test_an_author_merge_leaves_the_name_readable_under_the_surviving_key(changing):
    settings, port = changing
    await warm_popular_authors(names=["Peter Straub"], max_depth=0)
    _change(port, {"op": "merge_authors", "master": "OL10A", "duplicates": ["OL11A"], "timestamp": _at()})

    summary = await refresh()

    assert summary["refresh"]["merges"] == 1 and summary["authors_warmed"] == 1, summary
    bibliography, _, _, stale = await lookup(settings, "author", "Peter Straub")
    assert bibliography["author"]["openlibrary_key"] == "OL10A" and not stale
    client = make_redis(settings.redis.url)
    try:
        index = Keys(settings.redis.key_prefix).ol_authors()
        assert not await client.hexists(index, "OL11A")  # the duplicate's key is dead
        assert json.loads(await client.hget(index, "OL10A"))["key"] == "peter-straub"
    finally:
        await client.aclose()


async def test_a_feed_that_fails_mid_day_is_read_again_and_nothing_is_missed(changing):
    settings, port = changing
    await warm_popular_authors(names=["Alastair Reynolds"], max_depth=0)
    _change(
        port,
        {
            "op": "add_work",
            "author": "OL4A",
            "title": "Eversion",
            "isbn": ["9780575090774"],
            "timestamp": _at(),
        },
        {"op": "noise", "count": 1500, "timestamp": _at()},  # newest first: the new work is on page 2
    )
    set_faults(port, {**{p: Faults() for p in PROVIDERS}, "openlibrary": Faults(feed_fail_from_offset=1000)})

    failed = await refresh()

    assert failed["refresh"]["feed_error"] and failed["authors_queued"] == 0
    bibliography, _, _, _ = await lookup(settings, "author", "Alastair Reynolds")
    assert "Eversion" not in _titles(bibliography)

    set_faults(port, {p: Faults() for p in PROVIDERS})  # the feed is back
    summary = await refresh()

    assert summary["refresh"]["feed_error"] is None and summary["authors_warmed"] == 1, summary
    bibliography, _, _, _ = await lookup(settings, "author", "Alastair Reynolds")
    assert "Eversion" in _titles(bibliography)


async def test_a_since_beyond_the_feeds_reach_is_one_clear_error(changing):
    from bookwarm.errors import InputError

    with pytest.raises(InputError, match="at most 31 days back"):
        await refresh(since="2020-01-01")
