"""Runs nobody will end: a worker SIGKILLed under a shard, and a pool with no live worker. Real
`bookwarm workers start` processes on a Prefect server on PostgreSQL of this module's own.

OpenLibrary answers for a few authors and holds the rest (`hold_midway`), so "midway" is a state
the test waits for, not a moment it guesses; the holds end once the worker is dead. The kill waits
for Prefect itself to find the dead run: its heartbeats stop and bookwarm's automation marks it
Crashed (test_work_pool.py marks such runs through the API, as that automation does).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from bookwarm.providers.fake.runner import release_holds, set_faults
from bookwarm.providers.fake.server import PROVIDERS, Faults
from bookwarm.settings import resolve
from bookwarm.warming.jobs import summary
from tests.conftest import PROJECT
from tests.integration.conftest import hold_midway, processed
from tests.integration.pool.pool import (
    ALL_KEYS,
    FINAL,
    MIDWAY,
    Workers,
    asked,
    dead_letters,
    env_for,
    force_state,
    job_ids,
    record_of,
    runs_of_job,
    shard_midway,
    slugs,
    wait_for,
    warm,
    works_asked,
)

pytestmark = pytest.mark.long  # a pool of its own: PostgreSQL, a Prefect server, workers


def test_a_worker_killed_mid_shard_loses_nothing(pool_server, pool_providers, tmp_path):
    """SIGKILL a worker (and its shard's process) in the middle of a shard: Prefect's automation
    marks the run Crashed when its heartbeats stop, the job runs the shard's authors again once the
    dead worker's claims have lapsed, and authors finished before the kill are not asked again."""
    port, csv_path = pool_providers
    hold_midway(port, authors=4)
    env = env_for(pool_server, port, "wp2:", tmp_path, **MIDWAY)
    settings = resolve(env)
    api = pool_server["PREFECT_API_URL"]
    workers = Workers(env, tmp_path)
    try:
        job = warm(env, csv_path, "--shard-size", "12")
        job_id = wait_for("the job's record", lambda: asyncio.run(job_ids(settings)), 120)[0]
        victim = wait_for("a shard run midway", lambda: shard_midway(settings, api, job_id), 120)
        worker = victim.labels["prefect.worker.name"]
        workers.kill(worker)
        counted_at_kill = asyncio.run(record_of(settings, job_id))[1]
        release_holds(port)
        shard_keys = set(victim.parameters["author_keys"])
        in_flight = shard_keys - counted_at_kill
        done_before = shard_keys & counted_at_kill

        out, err = job.communicate(timeout=200)
        assert job.returncode == 0, err[-3000:]
        result = json.loads(out)
        assert result["status"] == "completed", result
        assert result["shard_retries"] >= 1
        crashed = next(r for r in runs_of_job(api, job_id) if r.id == victim.id)
        assert crashed.state_name == "Crashed", crashed.state
        # every author cached, none lost, and the summary adds up
        record, counted = asyncio.run(record_of(settings, job_id))
        s = summary(record)
        assert s["authors_not_started"] == 0 and s["authors_failed"] == 0, s
        assert len(counted) == len(ALL_KEYS)
        assert {r["openlibrary_key"] for r in asyncio.run(processed(settings)).values()} == ALL_KEYS
        # works asked again: only for the killed shard's authors that were in flight
        works = works_asked({}, asked(port))
        repeated = {k for k, n in works.items() if n > 1}
        slug = {v: k for k, v in slugs(settings).items()}
        repeated_authors = {slug.get(k, k) for k in repeated}
        print(f"killed {worker}: {len(in_flight)} authors in flight, works asked again for {len(repeated)}")
        assert repeated_authors <= in_flight, (repeated_authors, in_flight)
        assert not repeated_authors & done_before
    finally:
        release_holds(port)
        workers.close()


def test_a_pool_with_no_live_worker_stops_the_job_within_the_bound(pool_server, pool_providers, tmp_path):
    """No worker alive on the pool: a shard run a worker took but never started (left Pending) is
    Crashed and submitted again; one waiting for a worker past BOOKWARM_SHARD_START_TIMEOUT_S
    stops the job in one line naming the pool, nothing left Scheduled or Pending; workers plus
    `bookwarm resume` then finish it."""
    import httpx

    port, csv_path = pool_providers
    set_faults(port, {p: Faults() for p in PROVIDERS})
    api = pool_server["PREFECT_API_URL"]
    for worker in httpx.post(f"{api}/work_pools/bookwarm/workers/filter", json={}).json():
        httpx.delete(f"{api}/work_pools/bookwarm/workers/{worker['name']}")  # earlier tests' workers
    env = env_for(
        pool_server,
        port,
        "wp6:",
        tmp_path,
        BOOKWARM_OPENLIBRARY_RPS="500",
        BOOKWARM_SHARD_START_TIMEOUT_S="8",
    )
    settings = resolve(env)
    started = time.monotonic()
    job = warm(env, csv_path)
    job_id = wait_for("the job's record", lambda: asyncio.run(job_ids(settings)), 120)[0]
    first = wait_for("its shard run", lambda: runs_of_job(api, job_id), 60)[0]
    asyncio.run(force_state(api, first.id, "PENDING"))  # as a worker that took it and died would leave it
    _out, err = job.communicate(timeout=150)
    took = time.monotonic() - started
    said = [line for line in err.splitlines() if not line.startswith("[depth ")]
    assert job.returncode == 1 and "Traceback" not in err, err[-3000:]
    assert len(said) == 1, said
    assert (
        "no worker is taking shards of work pool 'bookwarm'" in said[0]
        and f"bookwarm resume {job_id}" in said[0]
    )
    print(f"no live worker: told after {took:.1f} s")
    runs = {r.id: r for r in runs_of_job(api, job_id)}
    assert runs[first.id].state_name == "Crashed" and "not started" in (runs[first.id].state.message or "")
    assert len(runs) >= 2  # submitted again after the crash
    assert all(r.state_type and r.state_type.value in FINAL for r in runs.values()), [
        (r.name, r.state_name) for r in runs.values()
    ]
    record, _ = asyncio.run(record_of(settings, job_id))
    assert record["status"] == "interrupted" and int(record["shard_retries"]) >= 1, record

    workers = Workers(env, tmp_path, count=1)
    try:
        # the default start timeout: under a loaded machine a worker's shard process can take longer
        # than 8 s to start, and the resume would Crash and resubmit its runs until the test timed out
        patient = {**env, "BOOKWARM_SHARD_START_TIMEOUT_S": "120"}
        resumed = subprocess.run(
            [sys.executable, "-m", "bookwarm", "resume", job_id, "--json"],
            env=patient,
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=150,
        )
        assert resumed.returncode == 0, (resumed.stderr[-3000:], asyncio.run(dead_letters(settings, job_id)))
        assert json.loads(resumed.stdout)["authors_not_started"] == 0
        assert summary(asyncio.run(record_of(settings, job_id))[0])["authors_failed"] == 0
    finally:
        workers.close()
