"""Uncertain identities become a review list an operator answers: pin the OpenLibrary key (the
author is warmed by it, and every later run uses it) or block the name. Real Redis, S3, Prefect
and the fake providers over the economy catalog (two John Smiths)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bookwarm.cache.redis_client import make_redis
from bookwarm.cli.read_cmd import lookup
from bookwarm.keys import Keys
from bookwarm.providers.fake.runner import stats
from bookwarm.warming.review import ReviewStore
from flows.resolve_review import resolve_review
from flows.warm_library import warm_library
from tests.integration.conftest import processed


def _library(tmp_path) -> str:
    path = tmp_path / "namesakes.csv"
    path.write_text("Title,Author\nA Poem for Winter,John Smith\nMurderbot,Martha Wells\n", encoding="utf-8")
    return str(path)


async def _store(settings) -> ReviewStore:
    return ReviewStore(make_redis(settings.redis.url), Keys(settings.redis.key_prefix), 3600)


async def test_namesakes_are_listed_then_pinned_and_later_runs_use_the_pin(
    economy_env, economy_providers, tmp_path
):
    summary = await warm_library(_library(tmp_path), max_depth=1)
    job_id = summary["job_id"]
    store = await _store(economy_env)
    (entry,) = await store.for_job(job_id)
    assert entry["name"] == "John Smith" and entry["books"] == ["A Poem for Winter"]
    candidates = {c["openlibrary_key"] for c in entry["candidates"]}
    assert {"OL100A", "OL101A"} <= candidates and all(c["works"] > 0 for c in entry["candidates"])
    assert [e["key"] for e in await store.open()] == ["john-smith"]

    cli = subprocess.run(  # what `bookwarm review JOB_ID` and `status` show
        [sys.executable, "-m", "bookwarm", "review", job_id, "--json"],
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 0 and json.loads(cli.stdout)[0]["key"] == "john-smith", cli.stderr

    resolved = await resolve_review("John Smith", openlibrary_key="OL101A")
    assert resolved["authors_warmed"] == 1 and resolved["resolution"] == "pinned to OL101A"
    smith, _, _, _ = await lookup(economy_env, "author", "John Smith")
    assert (
        smith["author"]["openlibrary_key"] == "OL101A"
        and smith["status"] == "ok"
        and smith["works_count"] == 11
    )
    assert await store.open() == []

    again = await warm_library(_library(tmp_path), max_depth=1, force=True)  # a later run, forced
    assert again["authors_partial"] == 0
    assert (await processed(economy_env))["john-smith"]["openlibrary_key"] == "OL101A"
    assert await store.for_job(again["job_id"]) == []
    await store.client.aclose()


async def test_not_an_author_is_blocked_and_never_fetched(economy_env, economy_providers, tmp_path):
    store = await _store(economy_env)  # what `bookwarm review resolve NAME --force` does first
    await store.add_by_operator("Martha Wells", "martha-wells")
    await store.client.aclose()
    result = await resolve_review("Martha Wells", not_an_author=True)
    assert result["resolution"] == "not an author (blocklist)"
    before = dict(stats(economy_providers)["openlibrary"]["asked"])
    summary = await warm_library(_library(tmp_path), max_depth=1, force=True)
    after = stats(economy_providers)["openlibrary"]["asked"]
    assert after.get("Martha Wells", 0) == before.get("Martha Wells", 0)  # never asked
    assert "martha-wells" not in await processed(economy_env)
    assert summary["authors_skipped"] >= 1 and summary["authors_failed"] == 0


async def test_a_bad_resolution_is_refused(economy_env):
    import pytest

    from bookwarm.errors import InputError

    for kwargs in ({}, {"openlibrary_key": "OL1A", "not_an_author": True}):
        state = await resolve_review("John Smith", return_state=True, **kwargs)
        assert state.is_failed()
        with pytest.raises(InputError):
            await state.aresult()
    # a name on no review list: whoever reaches the API cannot pin any name to any key
    state = await resolve_review("Nobody Listed", openlibrary_key="OL1A", return_state=True)
    assert state.is_failed() and "not on the review list" in (state.message or "")
    store = await _store(economy_env)
    assert await store.client.get(Keys(economy_env.redis.key_prefix).pin("nobody-listed")) is None
    await store.client.aclose()


async def test_a_namesake_counts_as_review_and_progress_counts_what_the_summary_counts(
    economy_env, economy_providers, tmp_path
):
    """A namesake is `review`, not `partial`; the CLI's progress rows (plain, as on a pipe) end with
    the summary's counts, name by name."""
    import io
    import re

    from bookwarm.cli.progress import SHOWN, ProgressBar
    from bookwarm.warming.progress import subscribe

    path = tmp_path / "counted.csv"
    path.write_text(
        "Title,Author\nA Poem for Winter,John Smith\nMurderbot,Martha Wells\nNothing,Qwyxz Vbnmjk\n",
        encoding="utf-8",
    )
    stream = io.StringIO()
    bar = ProgressBar(economy_env.redis.url, Keys(economy_env.redis.key_prefix), stream=stream)
    unsubscribe = subscribe(bar)
    try:
        summary = await warm_library(str(path), max_depth=1, force=True)
    finally:
        unsubscribe()
        bar.close()
    assert summary["authors_review"] == 1 and summary["authors_partial"] == 0, summary
    assert summary["authors_unknown"] == 1, summary
    last: dict[str, str] = {}
    for line in stream.getvalue().splitlines():
        if found := re.match(r"\[depth (\d+)\] ", line):
            last[found.group(1)] = line
    shown = {name: 0 for name in SHOWN}
    for line in last.values():
        for name in SHOWN:
            shown[name] += int(re.search(rf"\b{name} (\d+)", line).group(1))
    assert shown == {name: summary[f"authors_{name}"] for name in SHOWN}, (shown, stream.getvalue())
