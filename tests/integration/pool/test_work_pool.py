"""Shards on a work pool: real `bookwarm workers start` processes pull the shards of one job from a
Prefect server on PostgreSQL, with the deployments registered from deployments/prefect.yaml.

Each worker is a separate process with its own PREFECT_HOME. The job is a `bookwarm warm` CLI
process with BOOKWARM_WORK_POOL set; the fake providers count how often each author was asked for.
Here: workers sharing a job, a job stopped (cancel, SIGTERM) with shard runs waiting, and `bookwarm
workers start 3` with one worker SIGKILLed midway (its runs marked Crashed through the API, as
bookwarm's automation does: the automation itself is waited for once, in test_job_run_death.py).
A pool with no live worker is in test_worker_death.py (each file a pool of its own: the files run
side by side). The dead-worker tests stay here, after the others: moved to a fresh pool of their
own they hung twice in five runs under CI load (the job waiting on a shard run left Running), a
cause not found.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess

import psutil
import pytest

from bookwarm.providers.fake.runner import release_holds, set_faults
from bookwarm.providers.fake.server import PROVIDERS, Faults
from bookwarm.settings import resolve
from tests.integration.conftest import hold_midway, processed
from tests.integration.pool.pool import (
    ALL_KEYS,
    CLAIM_TTL_S,
    FINAL,
    MIDWAY,
    Supervisor,
    Workers,
    asked,
    cancel_job,
    communicate_or_explain,
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
from tests.integration.test_job_stops import _claims_left

# a pool of its own: PostgreSQL, a Prefect server, workers; a pool test runs several workers' processes: under a loaded machine more than the
# suite's 240 s a test, still a bound that fails a hang in minutes
pytestmark = [pytest.mark.long, pytest.mark.timeout(420)]


def test_three_workers_share_the_shards_of_one_job_and_warm_each_author_once(
    pool_server, pool_providers, tmp_path
):
    port, csv_path = pool_providers
    set_faults(port, {p: Faults() for p in PROVIDERS})
    env = env_for(pool_server, port, "wp1:", tmp_path, BOOKWARM_OPENLIBRARY_RPS="500")
    settings = resolve(env)
    # a worker runs one shard at a time, two at once on the pool: a level's 3 shards need 2 workers
    # (without --runs-per-worker 1, one worker could take them all, one after the other)
    workers = Workers(env, tmp_path, shards_at_once=2, more=("--runs-per-worker", "1"))
    try:
        before = asked(port)
        job = warm(env, csv_path, "--shard-size", "8")
        out, err = communicate_or_explain(job, pool_server["PREFECT_API_URL"], 220, tmp_path)
        assert job.returncode == 0, err[-3000:]
        result = json.loads(out)
        assert result["status"] == "completed"
        assert result["authors_queued"] == len(ALL_KEYS)
        # the CLI's progress, fed by the workers' shards through Redis (plain lines: stderr is a pipe)
        assert "[depth 0] " in err and " authors " in err, err[-2000:]
        records = asyncio.run(processed(settings))
        assert {r["openlibrary_key"] for r in records.values()} == ALL_KEYS
        runs = runs_of_job(pool_server["PREFECT_API_URL"], result["job_id"])
        assert len(runs) >= 6  # 24 library authors in shards of 8, then 24 co-authors
        assert all(r.state_name == "Completed" for r in runs), [(r.name, r.state_name) for r in runs]
        ran_on = {r.labels.get("prefect.worker.name") for r in runs}
        assert len(ran_on - {None}) >= 2, ran_on
        # every author's works asked for exactly once: no author fetched twice across workers
        works = works_asked(before, asked(port))
        assert set(works) == ALL_KEYS and set(works.values()) == {1}, works
    finally:
        workers.close()


@pytest.mark.parametrize("stop", ["cancel", "sigterm"])
def test_stopping_the_job_stops_its_shard_runs(pool_server, pool_providers, tmp_path, stop):
    """Cancelled from the UI, or its process sent SIGTERM, with shard runs still waiting for a slot
    of the shards queue: none of them warms an author after the job ended (two used to start 10 s
    after a cancel and claim 49 authors). A cancel ends them before the job's process exits; after a
    SIGTERM each starts, finds its job ended and stops at once, Cancelled. Running ones are cancelled
    (cancel) or finish what they hold (SIGTERM)."""
    port, csv_path = pool_providers
    hold_midway(port, authors=4)  # the job stays midway until released: nothing finishes before the stop
    env = env_for(
        pool_server,
        port,
        f"wp3{stop[0]}:",
        tmp_path,
        BOOKWARM_OPENLIBRARY_RPS="500",
        BOOKWARM_OPENLIBRARY_BATCH="1",
        # a worker kills a cancelled run's process and Prefect leaves it Cancelling: the job ends it after
        BOOKWARM_CANCEL_WAIT_S="10",
    )
    settings = resolve(env)
    api = pool_server["PREFECT_API_URL"]
    workers = Workers(env, tmp_path)  # the shards queue takes 3 at once: 5 of the 8 shards wait
    try:
        job = warm(env, csv_path, "--shard-size", "3")
        job_id = wait_for("the job's record", lambda: asyncio.run(job_ids(settings)), 120)[0]
        wait_for(
            "shard runs going, and others waiting for a slot",
            lambda: (lambda names: "Running" in names and bool(names & {"Scheduled", "Late"}))(
                {r.state_name for r in runs_of_job(api, job_id)}
            ),
            120,
        )
        if stop == "cancel":
            asyncio.run(cancel_job(api, job_id))
        else:
            job.send_signal(signal.SIGTERM)
        release_holds(port)  # what is in flight answers: its shards see the stop and end
        _out, err = job.communicate(timeout=120)
        at_exit = {r.id: r.state_name for r in runs_of_job(api, job_id)}
        waiting = {run_id for run_id, state in at_exit.items() if state in ("Scheduled", "Late", "Pending")}
        if stop == "cancel":
            assert not waiting, at_exit
        assert job.returncode == 1 and ("cancelled" if stop == "cancel" else "interrupted") in err, err[
            -2000:
        ]
        record, _ = asyncio.run(record_of(settings, job_id))
        assert record["status"] == ("cancelled" if stop == "cancel" else "interrupted")
        try:
            runs = wait_for(
                "every shard run final",
                lambda: (
                    lambda rs: rs if all(r.state_type and r.state_type.value in FINAL for r in rs) else None
                )(runs_of_job(api, job_id)),
                150,  # after a SIGTERM the running shards finish their authors first
            )
        except AssertionError as exc:
            states = [(r.name, r.state_name, (r.state.message or "")[:80]) for r in runs_of_job(api, job_id)]
            raise AssertionError(f"{exc}: {states}") from None
        assert any(r.state_name == "Cancelled" for r in runs), [(r.name, r.state_name) for r in runs]
        assert not [r for r in runs if r.state_name in ("Running", "Pending", "Scheduled")]
        late_starters = [(r.name, r.state_name, r.state.message) for r in runs if r.id in waiting]
        assert all(state == "Cancelled" for _, state, _ in late_starters), late_starters
        # no claim outlives its TTL
        wait_for(
            "every claim released or lapsed", lambda: not asyncio.run(_claims_left(settings)), CLAIM_TTL_S + 5
        )
    finally:
        release_holds(port)
        workers.close()


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
