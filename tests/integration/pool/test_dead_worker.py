"""`bookwarm workers start 3` with one worker SIGKILLed midway, on a pool of this file's own (the
pool files run side by side): with its shard's process, as a machine that dies, or alone, when the
shard's process lives on without the worker that read its output. The dead worker's runs are marked
Crashed through the API, as bookwarm's automation does (the automation itself is waited for once,
in test_job_run_death.py).

Under CI load these tests once hung with the job waiting on a shard run left Running: the orphaned
shard's first log line met its dead worker's pipe and rich exited from inside it
(flows/lost_console.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time

import psutil
import pytest

from bookwarm.providers.fake.runner import release_holds
from bookwarm.settings import resolve
from tests.integration.conftest import hold_midway, processed
from tests.integration.pool.pool import (
    ALL_KEYS,
    MIDWAY,
    Supervisor,
    asked,
    communicate_or_explain,
    env_for,
    force_state,
    job_ids,
    record_of,
    run_story,
    runs_of_job,
    shard_midway,
    slugs,
    wait_for,
    warm,
    works_asked,
)

# a pool of its own; a pool test runs several workers' processes: under a loaded machine more than the
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
    lapsed; with the worker alone dead, its shard's process sees it gone, stops (its authors in
    flight finished, its claims released) and ends its run Crashed, and the job runs the rest
    elsewhere. Either way authors finished before the kill are not asked again."""
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
        # lives on (worker only) ends itself (flows/flow_process.py).
        # Looked at for a few seconds, not once: a second shard the worker took at the same poll can turn
        # Running just after one listing (its process was forked as the worker died), and was then left to
        # the automation's 45 s (a run 60 s longer, session 17).
        dead = ("Pending", "Running") if with_children else ("Pending",)
        quiet = 0
        for _ in range(40):
            found = [
                run
                for run in runs_of_job(api, job_id)
                if run.labels.get("prefect.worker.name") == name and run.state_name in dead
            ]
            for run in found:
                asyncio.run(force_state(api, run.id, "CRASHED"))
            quiet = 0 if found else quiet + 1
            if quiet == 6:
                break
            time.sleep(0.25)
        if not with_children:  # the shard's own process sees its worker gone before what it holds answers
            wait_for(
                "the orphaned shard to see its worker gone",
                lambda: "is gone: this run stops" in asyncio.run(run_story(api, victim.id)),
                30,
            )
        release_holds(port)  # worker-only: the shard's own process finishes what it holds, then stops

        out, err = communicate_or_explain(job, api, 300, lambda: workers.said()[-2000:] + workers.logs())
        assert job.returncode == 0, err[-3000:]
        result = json.loads(out)
        assert result["status"] == "completed" and result["authors_not_started"] == 0, result
        assert result["authors_failed"] == 0, result
        assert {r["openlibrary_key"] for r in asyncio.run(processed(settings)).values()} == ALL_KEYS
        # its shard ran again, elsewhere
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
