"""Workers that die: `bookwarm workers start 3` with one worker SIGKILLed midway (its runs marked
Crashed through the API, as bookwarm's automation does: the automation itself is waited for once,
in test_job_run_death.py), and a pool with no live worker at all. Real `bookwarm workers start`
processes on a Prefect server on PostgreSQL of this module's own.

OpenLibrary answers for a few authors and holds the rest (`hold_midway`), so "midway" is a state
the test waits for, not a moment it guesses; the holds end once the worker is dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time

import psutil
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
    Supervisor,
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

# a pool of its own: PostgreSQL, a Prefect server, workers; a pool test runs several workers' processes: under a loaded machine more than the
# suite's 240 s a test, still a bound that fails a hang in minutes
pytestmark = [pytest.mark.long, pytest.mark.timeout(420)]


@pytest.mark.parametrize("with_children", [True, False], ids=["with-children", "worker-only"])
def test_one_dead_worker_of_three_the_others_go_on_and_the_job_completes(
    pool_server, pool_providers, tmp_path, with_children
):
    """`bookwarm workers start 3`, one worker SIGKILLed while its shard is midway (with the shard's
    process, as a machine that dies, or alone): the other two keep running, the dead one is
    started again, and the job completes by itself with every author cached. With its shard's
    process dead, the job runs the shard's authors again once the dead worker's claims have
    lapsed, and authors finished before the kill are not asked again."""
    port, csv_path = pool_providers
    hold_midway(port, authors=4)
    prefix = f"wp5{'c' if with_children else 'w'}:"
    env = env_for(pool_server, port, prefix, tmp_path, **MIDWAY)
    settings = resolve(env)
    api = pool_server["PREFECT_API_URL"]
    workers = Supervisor(env, tmp_path)
    try:
        pids = wait_for(
            "three workers started", lambda: (lambda p: p if len(p) == 3 else None)(workers.pids()), 60
        )
        assert len(set(pids)) == 3 and all(str(workers.proc.pid) in name for name in pids), pids
        before = asked(port)
        job = warm(env, csv_path, "--shard-size", "12")
        job_id = wait_for("the job's record", lambda: asyncio.run(job_ids(settings)), 120)[0]

        victim = wait_for("a shard run midway", lambda: shard_midway(settings, api, job_id), 120)
        name = victim.labels["prefect.worker.name"]
        pid = pids[name]
        family = [
            psutil.Process(pid),
            *(psutil.Process(pid).children(recursive=True) if with_children else []),
        ]
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.send_signal(signal.SIGKILL)
        counted_at_kill = asyncio.run(record_of(settings, job_id))[1]
        # What bookwarm does to the dead worker's runs, without its waits: one it took but never started
        # (Pending) is Crashed after BOOKWARM_SHARD_START_TIMEOUT_S (120 s); with its children dead,
        # one Running stops beating and its automation crashes it (45 s). A Running one whose process
        # lives on (worker only) is left to finish.
        dead = ("Pending", "Running") if with_children else ("Pending",)
        for run in runs_of_job(api, job_id):
            if run.labels.get("prefect.worker.name") == name and run.state_name in dead:
                asyncio.run(force_state(api, run.id, "CRASHED"))
        release_holds(port)  # worker-only: the shard's own process lives on and finishes it

        try:
            out, err = job.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            job.kill()
            _, err = job.communicate()
            states = [
                (r.name, r.state_name, r.labels.get("prefect.worker.name")) for r in runs_of_job(api, job_id)
            ]
            raise AssertionError(
                f"the job did not end: {states}\n{err[-3000:]}\n{workers.said()[-2000:]}"
            ) from None
        assert job.returncode == 0, err[-3000:]
        result = json.loads(out)
        assert result["status"] == "completed" and result["authors_not_started"] == 0, result
        assert result["authors_failed"] == 0, result
        assert {r["openlibrary_key"] for r in asyncio.run(processed(settings)).values()} == ALL_KEYS
        if with_children:  # its shard ran again, elsewhere
            assert result["shard_retries"] >= 1, result
            crashed = next(r for r in runs_of_job(api, job_id) if r.id == victim.id)
            assert crashed.state_name == "Crashed", crashed.state
        # works asked again only for the dead shard's authors in flight, never for one done before
        shard_keys = set(victim.parameters["author_keys"])
        in_flight, done_before = shard_keys - counted_at_kill, shard_keys & counted_at_kill
        slug = {v: k for k, v in slugs(settings).items()}
        repeated = {slug.get(k, k) for k, n in works_asked(before, asked(port)).items() if n > 1}
        print(f"killed {name}: {len(in_flight)} authors in flight, works asked again for {len(repeated)}")
        assert repeated <= in_flight and not repeated & done_before, (repeated, in_flight)
        # the supervisor never stopped, the other two workers never died, the dead one came back
        assert workers.proc.poll() is None, workers.said()[-2000:]
        for other, other_pid in pids.items():
            if other != name:
                assert psutil.pid_exists(other_pid) and workers.pids()[other] == other_pid, workers.said()
        assert f"worker {name} exited" in workers.said() and workers.pids()[name] != pid, workers.said()
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
