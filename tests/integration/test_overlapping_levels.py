"""Levels overlap, and each author is still taken at its shallowest depth (flows.levels).

A catalog of five authors where one (Yan Yu) is both the co-author of a depth-1 author (Xena Xu,
found early) and of a depth-0 author (Bo Beta) whose OpenLibrary answer is held: Xena is warmed
while Bo is still waiting (the levels overlap), Yan waits for depth 0 to end and is taken at
depth 1, not 2, and so her own co-author (Zed Zhao) is reached at max_depth 2. Had Yan been taken
at depth 2, Zed would never have been queued. Ada also names 49 others, so that her co-authors make
a partial shard's worth (a depth starts one early only for at least one OpenLibrary batch)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bookwarm.cache.redis_client import make_redis
from bookwarm.keys import Keys
from bookwarm.parsing.names import author_key
from bookwarm.settings import resolve
from bookwarm.warming.jobs import JobStore
from tests.integration.conftest import point_flows_at

pytestmark = pytest.mark.heavy  # half a minute or more: handed out before the short files

FILLERS = 49  # Ada's other co-authors: with Xena, a partial shard's worth (flows.levels.MIN_PARTIAL)
CATALOG = {
    "authors": [
        {
            "key": "OL1A",
            "name": "Ada Alpha",
            "works": [
                {"title": "Alpha and Xi", "year": 2001, "coauthors": ["OL3A"]},
                {
                    "title": "Alpha and Friends",
                    "year": 2002,
                    "coauthors": [f"OL{100 + i}A" for i in range(FILLERS)],
                },
            ],
        },
        {
            "key": "OL2A",
            "name": "Bo Beta",
            "works": [{"title": "Beta and Yu", "year": 2002, "coauthors": ["OL4A"]}],
        },
        {
            "key": "OL3A",
            "name": "Xena Xu",
            "works": [{"title": "Xu and Yu", "year": 2003, "coauthors": ["OL4A"]}],
        },
        {
            "key": "OL4A",
            "name": "Yan Yu",
            "works": [{"title": "Yu and Zhao", "year": 2004, "coauthors": ["OL5A"]}],
        },
        {"key": "OL5A", "name": "Zed Zhao", "works": [{"title": "Zhao Alone", "year": 2005}]},
        *(
            {
                "key": f"OL{100 + i}A",
                "name": f"Filler Person{i:02d}",
                "works": [{"title": f"Filler {i}", "year": 2006}],
            }
            for i in range(FILLERS)
        ),
    ]
}


@pytest.fixture(scope="module")
def five_authors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    from bookwarm.providers.fake.runner import FakeProviders

    home = tmp_path_factory.mktemp("five-authors")
    catalog = home / "catalog.json"
    catalog.write_text(json.dumps(CATALOG), encoding="utf-8")
    runner = FakeProviders(home)
    state = runner.up(catalog, real_limits=False)
    try:
        yield state.port
    finally:
        runner.down()


async def test_the_next_level_runs_while_one_is_held_and_each_author_keeps_its_shallowest_depth(
    five_authors, services, prefect_api, monkeypatch, request, tmp_path_factory, tmp_path: Path
) -> None:
    from bookwarm.providers.fake.runner import release_holds, set_faults
    from bookwarm.providers.fake.server import PROVIDERS, Faults
    from flows.warm_library import warm_library

    settings = point_flows_at(five_authors, services, monkeypatch, request, tmp_path_factory, "o")
    held = Faults(hold_when_asked=["Bo Beta", author_key("Bo Beta"), "OL2A"], hold_max_s=120)
    set_faults(five_authors, {p: Faults() for p in PROVIDERS} | {"openlibrary": held})
    source = tmp_path / "library.csv"
    source.write_text("Title,Author,ISBN\nAlpha and Xi,Ada Alpha,\nBeta and Yu,Bo Beta,\n", encoding="utf-8")

    client = make_redis(settings.redis.url)
    keys = Keys(settings.redis.key_prefix)
    jobs = JobStore(client, keys, 3600)
    # one author a shard: Ada's shard ends, and hands over Xena, while Bo's is held
    run = asyncio.ensure_future(warm_library(str(source), max_depth=2, shard_size=1))
    try:
        job_id = ""
        deadline = time.monotonic() + 120
        while not job_id or author_key("Xena Xu") not in await jobs.counted(job_id):
            assert not run.done() and time.monotonic() < deadline, run.done() and run.result()
            ids = [k.decode().removeprefix(keys.job("")) async for k in client.scan_iter(match=keys.job("*"))]
            job_id = next((i for i in ids if ":" not in i), "")
            await asyncio.sleep(0.05)
        # Xena (depth 1) is done while Bo (depth 0) is held: the levels overlap
        assert author_key("Bo Beta") not in await jobs.counted(job_id)
        # Xena named Yan, but depth 0 has not ended: Yan is not taken yet (Bo may name her, shallower)
        assert author_key("Yan Yu") not in {a["key"] for d in (await jobs.queued(job_id)).values() for a in d}
    finally:
        release_holds(five_authors)
    summary = await run
    queued = await jobs.queued(job_id)
    await client.aclose()
    depth_of = {a["name"]: depth for depth, authors in queued.items() for a in authors}
    named = {"Ada Alpha": 0, "Bo Beta": 0, "Xena Xu": 1, "Yan Yu": 1, "Zed Zhao": 2}
    assert {name: depth_of.get(name) for name in named} == named
    assert sorted(d for name, d in depth_of.items() if name.startswith("Filler")) == [1] * FILLERS
    assert summary["status"] == "completed" and summary["authors_queued"] == len(depth_of)
    assert summary["authors_warmed"] == len(depth_of)  # each once


def test_the_next_depth_starts_once_a_shard_has_handed_over_not_when_its_run_ends(
    services, prefect_api, fake_providers, tmp_path
):
    """A shard that counted all its authors and handed over all it found closes the next depth at
    once: with the depth-0 shard's run held from ending (the proxy parks its Completed), all of
    depth 1 (four co-authors: too few for an early partial shard) is warmed while that run still
    reads Running; released, the job completes. Before, depth 1 waited for depth 0's runs to end
    (their enrichment lanes, tables and final states: 0.3-0.5 s a level on a small library)."""
    import os
    import subprocess

    import httpx
    from prefect.settings import PREFECT_API_URL

    from bookwarm.providers.fake.runner import provider_env
    from tests.fakes.overloaded_api import OverloadedApi
    from tests.integration.conftest import communicate_or_dump, warm_demo_command

    api = PREFECT_API_URL.value()
    prefix = "handed-over:"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BOOKWARM_")},
        **services.env(),
        **provider_env(fake_providers),
        "BOOKWARM_HOME": str(tmp_path),
        "BOOKWARM_REDIS_PREFIX": prefix,
    }
    settings = resolve(env)

    async def depth_one_counted() -> tuple[str | None, bool]:
        client = make_redis(settings.redis.url)
        try:
            keys = Keys(prefix)
            ids = [
                raw.decode().removeprefix(keys.job("")) async for raw in client.scan_iter(match=keys.job("*"))
            ]
            ids = [i for i in ids if ":" not in i]
            if not ids:
                return None, False
            jobs = JobStore(client, keys, 3600)
            queued = await jobs.queued(ids[0])
            deeper = [a["key"] for a in queued.get(1, [])]
            return ids[0], bool(deeper) and not await jobs.uncounted(ids[0], deeper)
        finally:
            await client.aclose()

    def shard_state(job_id: str) -> str | None:
        runs = httpx.post(
            f"{api}/flow_runs/filter",
            json={"flow_runs": {"name": {"any_": ["warm-authors/d0/shard-0"]}}, "limit": 200},
        ).json()
        mine = [r for r in runs if r["parameters"].get("job_id") == job_id]
        return mine[0]["state_type"] if mine else None

    cmd = warm_demo_command()
    with OverloadedApi(api, hold_completion_named="warm-authors/d0/shard-0") as proxy:
        proc = subprocess.Popen(
            [*cmd, "--json"],
            env={**env, "PREFECT_API_URL": proxy.url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 180
            job_id, warmed = None, False
            while not warmed:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
                job_id, warmed = asyncio.run(depth_one_counted())
                if job_id and not warmed and proxy.completion_held.is_set():
                    # the depth-0 shard's work is done and its end held: depth 1 must go on without it
                    assert shard_state(job_id) == "RUNNING"
                time.sleep(0.05)
            assert job_id is not None and shard_state(job_id) == "RUNNING", "depth 1 waited for depth 0's run"
        finally:
            proxy.release_completion.set()
        out, err = communicate_or_dump(proc, 120, "the job")
    assert proc.returncode == 0, err[-3000:]
    assert json.loads(out)["status"] == "completed"
