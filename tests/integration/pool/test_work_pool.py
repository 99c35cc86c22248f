"""Shards on a work pool: real `bookwarm workers start` processes pull the shards of one job from a
Prefect server on PostgreSQL, with the deployments registered from deployments/prefect.yaml.

Each worker is a separate process with its own PREFECT_HOME. The job is a `bookwarm warm` CLI
process with BOOKWARM_WORK_POOL set; the fake providers count how often each author was asked for.
Here: workers sharing a job, a job stopped (cancel, SIGTERM) with shard runs waiting, and `bookwarm
workers start 3` with one worker SIGKILLed midway is in test_dead_worker.py, a pool with no
live worker in test_worker_death.py (each file a pool of its own: the files run side by side).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal

import psutil
import pytest

from bookwarm.providers.fake.runner import release_holds, set_faults, stats
from bookwarm.providers.fake.server import PROVIDERS, Faults
from bookwarm.settings import resolve
from tests.integration.conftest import hold_midway, processed
from tests.integration.pool.pool import (
    ALL_KEYS,
    CLAIM_TTL_S,
    FINAL,
    Workers,
    asked,
    cancel_job,
    communicate_or_explain,
    env_for,
    flow_run_process,
    job_ids,
    record_of,
    run_story,
    runs_of_job,
    wait_for,
    warm,
    worker_logs_of,
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
        out, err = communicate_or_explain(job, pool_server["PREFECT_API_URL"], 220, worker_logs_of(tmp_path))
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
        if stop == "cancel":  # first, what an operator sees of a held run on `kill -USR1` (README)
            wait_for("a query held", lambda: stats(port)["openlibrary"]["held"] > 0, 60)
            running = [r for r in runs_of_job(api, job_id) if r.state_name == "Running"]
            for run in running:
                with contextlib.suppress(psutil.Error, AttributeError):
                    flow_run_process(api, str(run.id)).send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
            marker = "asyncio tasks (SIGUSR1)"
            dumps: list[str] = []

            def held_dump() -> str | None:  # a held run's dump reaches down to the shard's own code
                stories = [asyncio.run(run_story(api, run.id)) for run in running]
                dumps[:] = [story[story.index(marker) :] for story in stories if marker in story]
                return next((dump for dump in dumps if "in _warm_shard" in dump), None)

            try:
                dump = wait_for("a held run's task dump in its log on the Prefect API", held_dump, 30)
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {len(running)} running, dumps:\n" + "\n".join(dumps)) from None
            assert "--- thread MainThread" in dump, dump[:8000]
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
