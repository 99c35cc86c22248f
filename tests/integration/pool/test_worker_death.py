"""Runs nobody will start: a pool with no live worker. Real `bookwarm workers start` processes
(for the resume) on a Prefect server on PostgreSQL of this module's own. Workers SIGKILLed midway
are in test_work_pool.py (their runs forced Crashed, as bookwarm's automation does) and
test_job_run_death.py (the automation itself, through Prefect's heartbeats).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from bookwarm.providers.fake.runner import set_faults
from bookwarm.providers.fake.server import PROVIDERS, Faults
from bookwarm.settings import resolve
from bookwarm.warming.jobs import summary
from tests.conftest import PROJECT
from tests.integration.pool.pool import (
    FINAL,
    Workers,
    dead_letters,
    env_for,
    force_state,
    job_ids,
    record_of,
    runs_of_job,
    wait_for,
    warm,
)

# a pool of its own: PostgreSQL, a Prefect server, workers; a pool test runs several workers' processes: under a loaded machine more than the
# suite's 240 s a test, still a bound that fails a hang in minutes
pytestmark = [pytest.mark.long, pytest.mark.timeout(420)]


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
