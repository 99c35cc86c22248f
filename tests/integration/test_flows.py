"""The warming flows end to end: Prefect harness, real Redis and S3, fake providers over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bookwarm.cache.objectstore import ObjectStore
from bookwarm.cache.redis_client import make_redis
from bookwarm.cli.read_cmd import lookup
from bookwarm.keys import Keys
from bookwarm.providers.fake.runner import release_holds, stats
from flows.redrive import redrive
from flows.warm_library import warm_library
from tests.fakes.refusing_s3 import refusing_s3
from tests.integration.conftest import hold_midway, processed

pytestmark = pytest.mark.heavy  # half a minute or more: handed out before the short files

# Eight authors of the demo catalog, for runs that are stopped midway.
EIGHT_AUTHORS = [
    "Neil Gaiman",
    "Terry Pratchett",
    "Stephen Baxter",
    "Alastair Reynolds",
    "Ursula K. Le Guin",
    "Todd Barton",
    "Peter Straub",
    "Jack Thorne",
]
CHAIN = {0: "neil-gaiman", 1: "terry-pratchett", 2: "stephen-baxter", 3: "alastair-reynolds"}


def library(tmp_path, *names: str):
    path = tmp_path / f"lib{abs(hash(names)) % 10**6}.csv"
    path.write_text(
        "Title,Author,ISBN\n" + "".join(f"Book {i},{n},\n" for i, n in enumerate(names)), encoding="utf-8"
    )
    return str(path)


@pytest.mark.parametrize("max_depth", [1, 2, 3])
async def test_co_author_levels_up_to_max_depth(flow_env, tmp_path, max_depth):
    summary = await warm_library(library(tmp_path, "Neil Gaiman"), max_depth=max_depth)
    done = await processed(flow_env)
    for depth in range(max_depth + 1):
        assert done[CHAIN[depth]]["depth"] == depth  # warmed by that level's subflow
    assert all(CHAIN[d] not in done for d in range(max_depth + 1, 4))
    assert summary["authors_failed"] == 0 and summary["status"] == "completed"
    assert summary["authors_warmed"] == len(done) - summary["authors_unknown"]


async def test_concurrent_runs_fetch_each_author_once(flow_env, tmp_path, fake_providers):
    a = library(tmp_path, "Neil Gaiman", "Ursula K. Le Guin")
    b = library(tmp_path, "Neil Gaiman", "J.K. Rowling")
    first, second = await asyncio.gather(warm_library(a, max_depth=1), warm_library(b, max_depth=1))
    # Gaiman, Pratchett, Le Guin, Todd Barton, Rowling, Jack Thorne, John Tiffany: each asked once,
    # by name (library authors) or by key (co-authors), in batches
    asked = stats(fake_providers)["openlibrary"]["asked"]
    by_key = {k: n for k, n in asked.items() if k.startswith("OL")}
    assert set(by_key.values()) == {1} and len(by_key) == 7
    assert all(n == 1 for k, n in asked.items() if not k.startswith("OL"))
    fetched = sum(s["authors_warmed"] + s["authors_partial"] + s["authors_unknown"] for s in (first, second))
    assert fetched == 7
    assert first["authors_skipped"] + second["authors_skipped"] == 2  # each side's view of the shared two


async def test_dead_letters_then_redrive(flow_env, tmp_path, monkeypatch):
    """The object store refuses one author's bibliography (S3's own 403 AccessDenied, as a bucket
    policy would): the task retries, fails, and is a dead letter; once writes are allowed, redrive
    finishes it."""
    refused = {f"/{flow_env.s3.bucket}/authors/terry-pratchett.json"}
    with refusing_s3(flow_env.s3.endpoint, refused) as endpoint:
        monkeypatch.setenv("BOOKWARM_S3_ENDPOINT", endpoint)
        await _dead_letter_then_redrive(flow_env, tmp_path, refused)


async def _dead_letter_then_redrive(flow_env, tmp_path, refused: set[str]) -> None:
    state = await warm_library(
        library(tmp_path, "Neil Gaiman", "Ursula K. Le Guin"), max_depth=1, return_state=True
    )
    summary = await state.aresult()
    assert state.is_completed()  # one dead letter never stops the job
    assert summary["authors_failed"] == 1 and summary["authors_warmed"] >= 3
    job_id = summary["job_id"]
    client = make_redis(flow_env.redis.url)
    dead = await client.hgetall(Keys(flow_env.redis.key_prefix).dead_letters(job_id))
    await client.aclose()
    entry = json.loads(dead[b"terry-pratchett"])
    assert entry["depth"] == 1 and "AccessDenied" in entry["reason"]

    # in the Prefect UI the dead letter was a Failed task run of its own, named by the author, with its reason
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
        TaskRunFilterName,
    )

    async with get_client() as prefect:
        deadline = time.monotonic() + 60  # the API records task runs a few seconds after they finish
        while True:
            shards = await prefect.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[job_id]))
            )
            runs = await prefect.read_task_runs(
                task_run_filter=TaskRunFilter(
                    name=TaskRunFilterName(any_=["dead-letter/Terry Pratchett/d1"]),
                    flow_run_id=TaskRunFilterFlowRunId(any_=[s.id for s in shards]),
                )
            )
            if (
                runs and runs[0].state is not None and runs[0].state.is_failed()
            ) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    assert len(runs) == 1 and runs[0].state is not None and runs[0].state.is_failed()
    assert "AccessDenied" in (runs[0].state.message or "")

    refused.clear()
    result = await redrive(job_id)
    assert result["redriven"] == 1 and result["still_failed"] == 0 and result["authors_failed"] == 0
    # the redrive's work is counted apart: the job's queue is what the job queued, and every author
    # queued is accounted for (Pratchett's co-author Stephen Baxter is new to the job's levels: depth 2)
    assert result["authors_queued"] == summary["authors_queued"]
    assert result["authors_queued"] + result["redrive_found"] == sum(
        result[f"authors_{s}"]
        for s in ("warmed", "skipped", "partial", "review", "unknown", "failed", "not_started")
    )
    bibliography, _, _, _ = await lookup(flow_env, "author", "Terry Pratchett")
    assert bibliography and bibliography["works_count"] == 4  # three of his own and Good Omens

    # ... and once the redrive warmed him, it is marked resolved: the UI's failed runs are Redis's dead letters
    async with get_client() as prefect:
        resolved = await prefect.read_task_run(runs[0].id)
    assert (
        resolved.state is not None
        and resolved.state.is_completed()
        and "resolved" in (resolved.state.message or "")
    )


async def test_warm_to_read_contract(flow_env, tmp_path):
    """Every author a run warmed is found by the lookup, by name and by each ISBN, hot or cold."""
    await warm_library(library(tmp_path, "Neil Gaiman", "J.K. Rowling", "Haruki Murakami"), max_depth=2)
    done = await processed(flow_env)
    warmed = [k for k, v in done.items() if v["status"] == "warmed"]
    assert len(warmed) >= 6
    client = make_redis(flow_env.redis.url)
    keys = Keys(flow_env.redis.key_prefix)
    for key in warmed:
        bibliography, tier, _, _ = await lookup(flow_env, "author", key.replace("-", " "))
        assert bibliography is not None and bibliography["author"]["key"] == key and tier == "hot"
        for work in bibliography["works"]:
            for isbn in work["isbn13"]:
                found, _, entry, _ = await lookup(flow_env, "isbn", isbn)
                # a co-written work's ISBN points at one of its authors
                assert entry["work"]["title"] == work["title"]
                assert found["author"]["key"] in {key} | {a["key"] for a in work["authors"]}
        await client.delete(keys.author(key))  # evicted from the hot tier ...
        cold, tier, _, _ = await lookup(flow_env, "author", key.replace("-", " "))
        assert cold == bibliography and tier == "cold"  # ... found in the object store and promoted
        assert await client.exists(keys.author(key))
    await client.aclose()


async def test_unknown_authors_get_a_short_negative_entry(flow_env, tmp_path):
    await warm_library(library(tmp_path, "Zyxw Qvrtnomad"), max_depth=1)
    client = make_redis(flow_env.redis.url)
    key = Keys(flow_env.redis.key_prefix).author("zyxw-qvrtnomad")
    entry = json.loads(await client.get(key))
    ttl = await client.ttl(key)
    await client.aclose()
    assert entry["status"] == "unknown" and entry["complete"] is False and entry["works"] == []
    assert 0 < ttl <= flow_env.redis.negative_ttl_s


@pytest.mark.parametrize("max_depth", [0, 4, -1])
async def test_bad_max_depth_rejected_before_any_work(flow_env, tmp_path, max_depth):
    with pytest.raises(Exception, match="max_depth"):
        await warm_library(library(tmp_path, "Neil Gaiman"), max_depth=max_depth)
    assert await processed(flow_env) == {}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{tmp}/no-such-library.csv", "file not found"),
        ("s3://{bucket}/uploads/no-such-object.csv", "does not exist"),
        ("Y29sb3VyLHNpemUKcmVkLDMK", "no recognisable author column"),
    ],
)
async def test_bad_source_fails_with_a_clear_message(flow_env, tmp_path, source, message):
    source = source.format(tmp=tmp_path, bucket=flow_env.s3.bucket)
    state = await warm_library(source, max_depth=1, return_state=True)
    assert state.is_failed() and message in state.message
    assert await processed(flow_env) == {}


async def test_s3_source(flow_env, tmp_path):
    store = ObjectStore(flow_env.s3)
    store.ensure_bucket()
    store.put_bytes_sync("uploads/lib.csv", b"Title,Author\nCoraline,Neil Gaiman\n", "text/csv")
    summary = await warm_library(f"s3://{flow_env.s3.bucket}/uploads/lib.csv", max_depth=1)
    assert summary["authors_queued"] == 2 and summary["authors_warmed"] == 2


def test_killed_run_restarts_and_skips_what_finished(flow_env, tmp_path, fake_providers):
    """Kill `bookwarm warm` midway; the next run skips finished authors and fetches only the rest."""
    names = EIGHT_AUTHORS
    path = library(tmp_path, *names)
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "BOOKWARM_HOME": str(tmp_path / "home"),
        "BOOKWARM_OPENLIBRARY_RPS": "500",
        "BOOKWARM_OPENLIBRARY_BATCH": "1",
        "BOOKWARM_JOB_HEARTBEAT_S": "0.5",
    }  # one author a batch; OpenLibrary holds its answers after two authors: killed midway
    hold_midway(fake_providers, 2)
    cmd = [sys.executable, "-m", "bookwarm", "warm", path, "--max-depth", "1", "--json"]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(asyncio.run(processed(flow_env))) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    release_holds(fake_providers)
    finished = set(asyncio.run(processed(flow_env)))
    assert 2 <= len(finished) < len(names)
    killed = asyncio.run(_interrupted_job(flow_env))  # the record tells the truth, within 3 beats
    assert killed["authors_queued"] == sum(
        killed[f"authors_{s}"]
        for s in ("warmed", "skipped", "partial", "review", "unknown", "failed", "not_started")
    )
    assert killed["authors_not_started"] > 0

    again = subprocess.run(
        cmd,
        env={**env, "BOOKWARM_OPENLIBRARY_RPS": "500"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    summary = json.loads(again.stdout)
    assert summary["authors_skipped"] >= len(finished)
    assert set(asyncio.run(processed(flow_env))) >= {
        n.lower().replace(" ", "-").replace(".", "") for n in names
    } - {"ursula-k-le-guin"}


async def test_prefect_shows_level_subflows_batch_tasks_and_artifacts(flow_env, tmp_path):
    """Prefect tracks batches, not authors: one warm-batch task run per batch, a table artifact of
    each shard's authors and statuses, one bookwarm.batch.warmed event per batch."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        ArtifactFilterType,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )

    state = await warm_library(
        library(tmp_path, "Neil Gaiman", "Ursula K. Le Guin"), max_depth=1, return_state=True
    )
    job_id = str(state.state_details.flow_run_id)
    batches = {"warm-batch/d0/shard-0/batch-0", "warm-batch/d1/shard-0/batch-0"}
    async with get_client() as client:
        deadline = time.monotonic() + 60  # the API records task runs a few seconds after they finish
        while True:
            subflows = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[job_id]))
            )
            tasks = (
                await client.read_task_runs(
                    task_run_filter=TaskRunFilter(
                        flow_run_id=TaskRunFilterFlowRunId(any_=[s.id for s in subflows])
                    )
                )
                if subflows
                else []
            )
            names = {t.name for t in tasks}
            if batches <= names or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert {s.name for s in subflows} == {"warm-authors/d0/shard-0", "warm-authors/d1/shard-0"}
        assert batches <= names
        # two library authors at depth 0 and their co-authors at depth 1: one write task per level
        assert sum(n.startswith("warm-batch/") for n in names) == 2
        assert not any(n.startswith(("warm-author/", "dead-letter/")) for n in names)
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[f"bookwarm-job-{job_id}", f"bookwarm-dead-{job_id}"])
            )
        )
        assert {a.type for a in artifacts} == {"table"} and len(artifacts) == 2
        progress = await client.read_artifacts(
            artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"])), flow_run_filter=None
        )
        assert any(a.flow_run_id and str(a.flow_run_id) == job_id and a.data == 100.0 for a in progress)
        tables = await client.read_artifacts(
            artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["table"])),
            flow_run_filter=FlowRunFilter(id={"any_": [s.id for s in subflows]}),
        )
        shard_rows = {
            t.description.split(" of job")[0]: json.loads(t.data) if isinstance(t.data, str) else t.data
            for t in tables
        }
        assert set(shard_rows) == {"Shard 0 at depth 0", "Shard 0 at depth 1"}
        depth0 = {r["name"]: r for r in shard_rows["Shard 0 at depth 0"]}
        assert set(depth0) == {"Neil Gaiman", "Ursula K. Le Guin"}
        assert depth0["Neil Gaiman"]["status"] == "warmed" and depth0["Neil Gaiman"]["works"] == 5
        assert depth0["Neil Gaiman"]["openlibrary_key"] == "OL1A"
        assert "Terry Pratchett" in {r["name"] for r in shard_rows["Shard 0 at depth 1"]}

        events: list[dict] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            response = await client.request(
                "POST",
                "/events/filter",
                json={
                    "filter": {
                        "event": {"name": ["bookwarm.batch.warmed"]},
                        "related": {"resources_in_roles": [[f"bookwarm.job.{job_id}", "job"]]},
                    },
                    "limit": 50,
                },
            )
            events = response.json()["events"]
            if len(events) >= 2:
                break
            await asyncio.sleep(0.5)
        by_depth = {e["payload"]["depth"]: e["payload"] for e in events}
        assert set(by_depth) == {0, 1} and len(events) == 2
        first = by_depth[0]
        assert first["authors"] == 2 and first["statuses"] == {"warmed": 2} and first["failed"] == []
        assert first["works"] == depth0["Neil Gaiman"]["works"] + depth0["Ursula K. Le Guin"]["works"]
        assert first["duration_s"] > 0


async def test_library_flow_uses_the_gemini_fallback(flow_env, monkeypatch):
    """A hand-typed list no rule understands is read by Gemini inside the flow, then warmed."""
    from tests.conftest import FIXTURES
    from tests.fakes.gemini_server import GeminiServer

    with GeminiServer() as gemini:
        monkeypatch.setenv("BOOKWARM_GEMINI_URL", gemini.url)
        monkeypatch.setenv("BOOKWARM_GEMINI_API_KEY", "flow-test-key")
        summary = await warm_library(str(FIXTURES / "messy/author_dash_title.txt"), max_depth=1)
        assert gemini.faults.calls == 1
    assert summary["format"] == "llm"
    done = await processed(flow_env)
    assert {"ursula-k-le-guin", "stephen-king"} <= {k for k, v in done.items() if v["status"] == "warmed"}


async def _interrupted_job(settings) -> dict:
    """The summary of the one job of this test's prefix, once it reads as interrupted (bounded)."""
    from bookwarm.warming.jobs import JobStore, summary

    client = make_redis(settings.redis.url)
    keys = Keys(settings.redis.key_prefix)
    jobs = JobStore(client, keys, 3600, heartbeat_s=0.5)
    try:
        ids = [
            raw.decode().rsplit(":", 1)[-1]
            async for raw in client.scan_iter(match=keys.job("*"))
            if ":" not in raw.decode().removeprefix(keys.job(""))
        ]
        assert len(ids) == 1, ids
        deadline = time.monotonic() + 15
        while (record := await jobs.get(ids[0]))["status"] != "interrupted":
            assert record["status"] == "running" and time.monotonic() < deadline, record
            await asyncio.sleep(0.1)
        return summary(record)
    finally:
        await client.aclose()
