"""The call economy end to end: the library flow against a fake OpenLibrary, Google Books and
ISBNdb (real HTTP, their real formats), real Redis, S3 and a Prefect server."""

from __future__ import annotations

import contextlib
import json

import pytest
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from bookwarm.cache.redis_client import make_redis
from bookwarm.cli.read_cmd import lookup
from bookwarm.keys import Keys
from bookwarm.providers.fake.catalog import isbn13_for
from bookwarm.providers.fake.runner import set_faults, stats
from bookwarm.providers.fake.server import PROVIDERS, Faults
from flows.enrich import enrich
from flows.redrive import redrive
from flows.warm_library import warm_library
from tests.integration.conftest import processed

pytestmark = pytest.mark.heavy  # half a minute or more: handed out before the short files

LIBRARY = [
    ("Smith Poet Book 1", "John Smith", isbn13_for("Smith Poet/1")),  # the namesake the user reads
    ("Tolkien Book 3", "JRR Tolkien", isbn13_for("Tolkien/3")),
    ("Murakami Book 1", "村上春樹", ""),
    ("Dostoevsky Book 2", "Фёдор Достоевский", ""),
    ("Leckie Book 2", "Ann Leckie", isbn13_for("Leckie/2")),
    ("Chambers Book 1", "Becky Chambers", ""),
    ("Wells Book 1", "Martha Wells", isbn13_for("Wells/1")),
    ("Butler Book 1", "Octavia E. Butler", ""),
    ("Chiang Book 2", "Ted Chiang", isbn13_for("Chiang/2")),
]


def library_file(tmp_path) -> str:
    path = tmp_path / "library.csv"
    path.write_text(
        "Title,Author,ISBN\n" + "".join(f"{t},{a},{i}\n" for t, a, i in LIBRARY), encoding="utf-8"
    )
    return str(path)


async def test_a_library_costs_a_few_batched_calls_and_isbns_settle_namesakes(
    economy_env, economy_providers, tmp_path
):
    summary = await warm_library(library_file(tmp_path), max_depth=1)
    done = await processed(economy_env)
    served = stats(economy_providers)
    # 9 library authors and 1 co-author (Rachel Swirsky, from Leckie Book 1)
    assert summary["authors_queued"] == 10 and summary["authors_warmed"] == 10, summary
    assert done["john-smith"]["openlibrary_key"] == "OL101A"  # by the user's book, not the name
    assert done["rachel-swirsky"]["depth"] == 1 and done["rachel-swirsky"]["openlibrary_key"] == "OL107A"
    smith, _, _, _ = await lookup(economy_env, "author", "John Smith")
    assert smith["works_count"] == 11 and smith["complete"] and smith["status"] == "ok"
    # depth 0: one ISBN batch, one name batch, one key batch; depth 1: one key batch
    assert served["openlibrary"]["requests"] == 4
    calls = sum(served[p]["requests"] for p in PROVIDERS)
    assert summary["provider_calls"] == calls  # every call counted, enrichment's too


async def test_google_books_quota_spent_leaves_authors_warmed_and_enrichment_pending(
    economy_env, economy_providers, tmp_path, monkeypatch
):
    monkeypatch.setenv("BOOKWARM_GOOGLE_BOOKS_DAILY_QUOTA", "2")
    monkeypatch.setenv("BOOKWARM_GOOGLE_BOOKS_QUOTA_SHARE", "1")
    summary = await warm_library(library_file(tmp_path), max_depth=1)
    google = summary["enrichment"]["google_books"]
    assert summary["authors_warmed"] == 10 and summary["authors_partial"] == 0
    assert stats(economy_providers)["google_books"]["requests"] <= 2  # never past the budget
    assert google["done"] <= 2 and google["done"] + google["pending"] == 10

    # The next UTC day, on bookwarm's own clock: the enrich flow drains what is pending, library
    # authors first, on the new day's quota.
    monkeypatch.setenv("BOOKWARM_CLOCK_OFFSET_S", str(24 * 3600))
    monkeypatch.setenv("BOOKWARM_GOOGLE_BOOKS_DAILY_QUOTA", "100")
    result = await enrich(job_id=summary["job_id"])
    assert result["google_books"]["done"] == google["pending"] and result["google_books"]["pending"] == 0
    leckie, _, _, _ = await lookup(economy_env, "author", "Ann Leckie")
    described = [w for w in leckie["works"] if w.get("description")]
    assert described and {w["sources"]["description"] for w in described} <= {"google_books", "isbndb"}
    assert all(w["categories"] and w["sources"]["categories"] == "google_books" for w in leckie["works"])
    assert leckie["status"] == "ok" and leckie["sources"]["google_books"]["ok"]


async def test_a_failed_batch_fails_only_its_bad_author_and_redrive_finishes_it(
    economy_env, economy_providers, tmp_path
):
    set_faults(
        economy_providers,
        {**{p: Faults() for p in PROVIDERS}, "openlibrary": Faults(fail_when_asked="Becky Chambers")},
    )
    state = await warm_library(library_file(tmp_path), max_depth=1, return_state=True)
    summary = await state.aresult()
    assert state.is_completed() and summary["authors_failed"] == 1 and summary["authors_warmed"] == 9
    client = make_redis(economy_env.redis.url)
    dead = await client.hgetall(Keys(economy_env.redis.key_prefix).dead_letters(summary["job_id"]))
    await client.aclose()
    assert set(dead) == {b"becky-chambers"} and "openlibrary" in json.loads(dead[b"becky-chambers"])["reason"]
    assert "becky-chambers" not in await processed(economy_env)  # never cached with no works

    job_id = summary["job_id"]
    # her Failed task run, as Prefect's server records it (from the run's events, a moment later)
    failed = await _task_run_state(economy_env, job_id, "becky-chambers", "Failed")
    assert failed.name == "dead-letter/Becky Chambers/d0"

    set_faults(economy_providers, {p: Faults() for p in PROVIDERS})
    result = await redrive(summary["job_id"])
    assert result["still_failed"] == 0
    chambers, _, _, _ = await lookup(economy_env, "author", "Becky Chambers")
    assert chambers["works_count"] == 3
    # the UI no longer shows her as a dead letter: her task run is marked resolved by the redrive
    async with get_client() as client:
        run = await client.read_task_run(failed.id)
    assert run.state_name == "Completed" and "resolved" in (run.state.message or ""), run.state


async def _task_run_state(settings, job_id: str, author_key: str, state_name: str, timeout_s: float = 30.0):
    """The author's dead-letter task run once Prefect holds it in ``state_name``."""
    import asyncio
    import time

    from bookwarm.warming.jobs import JobStore

    client = make_redis(settings.redis.url)
    try:
        run_id = (await JobStore(client, Keys(settings.redis.key_prefix), 3600).dead_letter_runs(job_id))[
            author_key
        ]
    finally:
        await client.aclose()
    deadline = time.monotonic() + timeout_s
    async with get_client() as prefect:
        while True:
            with contextlib.suppress(ObjectNotFound):
                run = await prefect.read_task_run(run_id)
                if run.state_name == state_name:
                    return run
            assert time.monotonic() < deadline, f"task run {run_id} never {state_name}"
            await asyncio.sleep(0.2)


async def test_a_forced_rewarm_asks_by_the_stored_openlibrary_keys_only(
    economy_env, economy_providers, tmp_path
):
    await warm_library(library_file(tmp_path), max_depth=1)
    set_faults(economy_providers, {p: Faults() for p in PROVIDERS})  # counts from zero
    summary = await warm_library(library_file(tmp_path), max_depth=1, force=True)
    asked = stats(economy_providers)["openlibrary"]["asked"]
    assert summary["authors_warmed"] == 10
    assert asked and all(
        value.startswith("OL") and value.endswith("A") for value in asked
    )  # no name, no ISBN
    assert set(asked.values()) == {1}
