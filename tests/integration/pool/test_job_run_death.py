"""A job's own run whose worker dies: not a shard, yet ended like one. A pool of this file's own
(PostgreSQL, a Prefect server, real `bookwarm workers start` processes), so it runs beside the
other pool files; the kill waits for Prefect itself (heartbeats stop, bookwarm's automation marks
the job's run and its shard's Crashed). It is the suite's one wait on Prefect's heartbeats (every
30 s at the least, the automation's window 45 s): the pool's other worker deaths force the
automation's Crashed through the API and prove what follows."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest

from bookwarm.providers.fake.runner import release_holds
from bookwarm.settings import resolve
from bookwarm.warming.jobs import summary
from tests.integration.conftest import hold_midway
from tests.integration.pool.pool import (
    ALL_KEYS,
    FINAL,
    MIDWAY,
    Workers,
    dead_letters,
    deployment_run,
    env_for,
    flow_run,
    record_of,
    runs_of_job,
    shard_midway,
    wait_for,
)

# a pool of its own; a pool test runs several workers' processes: under a loaded machine more than the
# suite's 240 s a test, still a bound that fails a hang in minutes
pytestmark = [pytest.mark.long, pytest.mark.timeout(420)]


def test_a_worker_killed_under_a_job_run_frees_its_slot_and_resume_finishes(
    pool_server, pool_providers, tmp_path
):
    """Not only shards: a `warm-library` run whose worker is SIGKILLed (with the job's own process
    and its shard's) is marked Crashed by bookwarm's automation when its heartbeats stop, as is the
    shard run that died with it, so no run is left Running holding a `jobs` slot; the job's record reads interrupted; and a `resume` run,
    on a queue that takes one job at a time, gets the freed slot and finishes the job."""
    port, csv_path = pool_providers
    hold_midway(port, authors=4)
    env = env_for(pool_server, port, "wp7:", tmp_path, **MIDWAY)
    settings = resolve(env)
    api = pool_server["PREFECT_API_URL"]
    source = "base64:" + base64.b64encode(csv_path.read_bytes()).decode()
    first = Workers(env, tmp_path / "first", count=1)
    try:
        job = asyncio.run(
            # shards of 12, as the dead-worker tests: one shard of all 24 reached "midway" 40 s later
            # (docs/decisions.md, session 16)
            deployment_run(
                api, "warm-library/warm-library", {"source": source, "max_depth": 1, "shard_size": 12}
            )
        )
        job_id = str(job.id)
        victim = wait_for("a shard of the job held midway", lambda: shard_midway(settings, api, job_id), 150)
        first.kill("w0-0")
    finally:
        release_holds(port)
        first.close()

    def job_run_state() -> Any:
        run = asyncio.run(flow_run(api, job.id))
        return run if run.state_type and run.state_type.value in FINAL else None

    ended = wait_for("the job's run ended by the automation", job_run_state, 180)
    assert ended.state_name == "Crashed" and "heartbeat" in (ended.state.message or ""), ended.state
    # No shard run is left holding a slot: the one that died is ended. Shard runs of the next depth
    # that no worker took yet (levels overlap) wait Scheduled, holding nothing; the resume ends them.
    wait_for(
        "its shard runs that had started ended",
        lambda: not [r for r in runs_of_job(api, job_id) if r.state_name in ("Running", "Pending")],
        120,
    )
    # the shard run killed with it, by the same automation (the pool's other tests force this state)
    shard = next(r for r in runs_of_job(api, job_id) if r.id == victim.id)
    assert shard.state_name == "Crashed" and "heartbeat" in (shard.state.message or ""), shard.state
    record = wait_for(
        "the job's record to read interrupted",
        lambda: (r := asyncio.run(record_of(settings, job_id))[0]).get("status") == "interrupted" and r,
        60,
    )
    assert summary(record)["authors_not_started"] > 0, record  # the kill left work to do

    second = Workers(env, tmp_path / "second", count=1, more=("--jobs-at-once", "1"))
    try:
        resumed = asyncio.run(deployment_run(api, "resume/resume", {"job_id": job_id}))

        def resume_state() -> Any:
            run = asyncio.run(flow_run(api, resumed.id))
            return run if run.state_type and run.state_type.value in FINAL else None

        done = wait_for("the resume run on the freed slot", resume_state, 240)
        record, counted = asyncio.run(record_of(settings, job_id))
        assert done.state_name == "Completed", (done.state, asyncio.run(dead_letters(settings, job_id)))
        s = summary(record)
        assert s["status"] == "completed" and s["authors_not_started"] == 0 and s["authors_failed"] == 0, s
        assert len(counted) == len(ALL_KEYS)
        # nothing of the dead run is left to start later
        left = [(r.name, r.state_name) for r in runs_of_job(api, job_id) if r.state_type.value not in FINAL]
        assert not left, left
    finally:
        second.close()


def test_services_up_brings_back_a_dead_postgres_under_a_live_prefect_server(pool_server, tmp_path):
    """PostgreSQL SIGKILLed under the pool's live Prefect server (which then answers 500):
    `bookwarm services up --postgres` starts it again on its port with its data, says PostgreSQL
    serves, and the API reads what it held before (it said SQLite and refused a second time)."""
    import json
    import os
    import signal
    import subprocess
    import sys

    import httpx

    from bookwarm.services.local import LocalServices
    from tests.conftest import PROJECT

    home = pool_server["BOOKWARM_HOME"]
    api = pool_server["PREFECT_API_URL"]
    before = httpx.post(f"{api}/flow_runs/count", json={}, timeout=30).json()
    state = LocalServices(Path(home)).state()
    assert state is not None and state.postgres_pid
    os.kill(state.postgres_pid, signal.SIGKILL)
    wait_for("the API to fail on its lost database", lambda: not _answers(api), 60)

    env = {**os.environ, "BOOKWARM_HOME": home, "PREFECT_HOME": str(tmp_path / "cli-prefect")}
    # a job started meanwhile: one line naming the database (it was a 55-line traceback)
    warm = subprocess.run(
        [sys.executable, "-m", "bookwarm", "warm", str(PROJECT / "examples" / "library.csv")],
        env={**env, **pool_server},
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert warm.returncode == 1 and "Traceback" not in warm.stderr, warm.stderr[-3000:]
    assert warm.stderr.count("\n") == 1 and "database" in warm.stderr, warm.stderr
    for _ in range(2):  # and a second time: nothing to repair, the same line
        up = subprocess.run(
            [sys.executable, "-m", "bookwarm", "services", "up", "--postgres"],
            env=env,
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert up.returncode == 0, up.stderr[-2000:]
        assert f"database: PostgreSQL on port {state.postgres_port}" in up.stdout, up.stdout
    assert httpx.post(f"{api}/flow_runs/count", json={}, timeout=30).json() == before
    assert json.loads(httpx.get(f"{api}/health", timeout=10).text) is True


def _answers(api: str) -> bool:
    import httpx

    try:
        return httpx.post(f"{api}/flow_runs/count", json={}, timeout=10).status_code == 200
    except httpx.HTTPError:
        return False
