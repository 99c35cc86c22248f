"""A job that loses a service midway stops in one line and is resumed to the end, or rides a short
loss out: its Prefect server SIGKILLed under a running `bookwarm warm` and started again on its port
and database, a Prefect API that answers 503 to a burst, Redis lost for a blink or for good, and
`bookwarm deployments serve` told to stop while its server is down.

Real parts: the session's Redis and S3 (or a Redis of the test's own, to kill), the fake providers
(holding OpenLibrary's answers after two authors, so the job is caught midway: `hold_midway`), and a
Prefect server of the test's own where it is the one lost. Stops by cancel and SIGTERM are in
test_job_stops.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from bookwarm.providers.fake.runner import release_holds
from bookwarm.services.process import stop
from bookwarm.warming.jobs import summary
from flows.warm_library import warm_library
from tests.integration.conftest import hold_midway, processed, seeded_prefect_home
from tests.integration.test_flows import library
from tests.integration.test_job_stops import (
    MIDWAY,
    NAMES,
    _add_up,
    _asked,
    _asked_again,
    _claims_left,
    _jobs,
    _openlibrary_calls,
    _resume_cli,
    _states_on,
)

pytestmark = pytest.mark.long  # jobs stopped midway, each resumed: several CLI runs a test


@pytest.fixture
def own_prefect_server(tmp_path, prefect_db_template):
    """A Prefect server only this test uses (and kills): (pid holder, port, restart)."""
    from bookwarm.services.local import start_prefect_server

    home, log = seeded_prefect_home(tmp_path / "prefect", prefect_db_template), tmp_path / "prefect.log"
    server = {}
    server["pid"], server["port"] = start_prefect_server(home, log, stop_grace_s=2.0)

    def restart() -> None:
        server["pid"], port = start_prefect_server(home, log, stop_grace_s=2.0, port=server["port"])
        assert port == server["port"]

    server["restart"] = restart
    try:
        yield server
    finally:
        stop(server["pid"], 2.0)


def test_lost_prefect_server_interrupts_the_job_and_resume_finishes_it(
    flow_env, tmp_path, fake_providers, own_prefect_server
):
    path = library(tmp_path, *NAMES)
    # what is held answers 10 s on: long after the 3 s grace, so the job stops mid-level
    hold_midway(fake_providers, 2, max_s=10)
    env = {
        **os.environ,
        **MIDWAY,
        "PREFECT_API_URL": f"http://127.0.0.1:{own_prefect_server['port']}/api",
        "BOOKWARM_HOME": str(tmp_path / "home"),
        "BOOKWARM_PREFECT_GRACE_S": "3",
    }
    cmd = [sys.executable, "-m", "bookwarm", "warm", path, "--max-depth", "1", "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(asyncio.run(processed(flow_env))) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    os.killpg(own_prefect_server["pid"], signal.SIGKILL)
    killed_at = time.monotonic()
    out, err = proc.communicate(timeout=120)
    took = time.monotonic() - killed_at

    assert proc.returncode == 1, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("[")]  # bar
    assert len(lines) == 1 and lines[0].startswith("bookwarm: error: job "), err[-3000:]
    assert "interrupted" in lines[0] and "bookwarm resume" in lines[0]
    print(f"exited {took:.1f} s after the Prefect server was killed (grace 3 s)")

    async def check() -> tuple[str, dict]:
        jobs, ids = await _jobs(flow_env)
        try:
            assert len(ids) == 1
            return ids[0], summary(await jobs.get(ids[0]))
        finally:
            await jobs.client.aclose()

    job_id, record = asyncio.run(check())
    # Stopped mid-level (authors not started) or between levels (co-authors not queued yet):
    # either way the resume below has authors left to warm.
    assert record["status"] == "interrupted", record
    assert record["authors_failed"] == 0  # no author became a dead letter for the lost server
    assert json.loads(out) == record  # --json prints the partial summary on this stop too
    _add_up(record)
    assert asyncio.run(_claims_left(flow_env)) == []
    finished = asyncio.run(processed(flow_env))
    calls_before, asked_before = _openlibrary_calls(fake_providers), _asked(fake_providers)

    own_prefect_server["restart"]()
    release_holds(fake_providers)
    again = _resume_cli(env, job_id)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = json.loads(again.stdout)
    assert resumed["status"] == "completed" and resumed["authors_not_started"] == 0
    assert resumed["authors_queued"] == record["authors_queued"]
    _add_up(resumed)
    done = set(asyncio.run(processed(flow_env)))
    assert {"neil-gaiman", "terry-pratchett", "todd-barton", "jack-thorne"} <= done
    assert 0 < _openlibrary_calls(fake_providers) - calls_before <= 2 * len(done - set(finished))
    assert _asked_again(asked_before, _asked(fake_providers), finished) == set()

    # The job's run, and the shard runs under it, ended while the server was down, so nothing could
    # tell Prefect: the resume's job told it at its start. Without that they read Running for good.
    job_state, shard_states = _states_on(own_prefect_server["port"], job_id)
    assert job_state == "CRASHED", job_state
    assert shard_states and set(shard_states) <= {"COMPLETED", "CRASHED"}, shard_states


async def test_an_overloaded_api_slows_the_job_down_instead_of_failing_it(flow_env, tmp_path, fake_providers):
    """Subflow creations answered 503 past the client's retries: those shards run again, fewer at
    once, and every author is warmed exactly once."""
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    from tests.fakes.overloaded_api import OverloadedApi

    with (
        OverloadedApi(PREFECT_API_URL.value(), fail_first=2) as proxy,
        temporary_settings({PREFECT_API_URL: proxy.url, PREFECT_CLIENT_MAX_RETRIES: 0}),
    ):
        summary = await warm_library(library(tmp_path, *NAMES), max_depth=1, shard_size=3)
    assert proxy.failed == 2
    # at least those two (the harness's own SQLite API may shed a creation too, under this load)
    assert summary["status"] == "completed" and summary["shard_retries"] >= 2
    assert summary["authors_queued"] >= len(NAMES) and summary["authors_not_started"] == 0
    _add_up(summary)
    asked = _asked(fake_providers)
    assert all(n == 1 for n in asked.values()), asked  # nobody fetched twice across the rounds


def _own_redis(tmp_path) -> tuple[int, Callable[[], int]]:
    """A Redis only this test uses (and kills), its data kept across restarts: (port, start)."""
    from bookwarm.services import binaries
    from bookwarm.services.process import free_port, spawn, wait_for_port

    port = free_port()
    argv = [binaries.redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)]

    def start_redis() -> int:
        proc = spawn(argv, tmp_path / "redis.log")
        wait_for_port(port, proc.pid, "redis-server", tmp_path / "redis.log")
        return proc.pid

    return port, start_redis


def _warming_on_own_redis(tmp_path, fake_providers: int, **extra: str):
    """`bookwarm warm --json` against a Redis of the test's own, returned once two authors are
    warmed and OpenLibrary holds the rest (`release_holds` lets them go): (process, settings, env,
    start_redis, Redis pid)."""
    from prefect.settings import PREFECT_API_URL

    from bookwarm.settings import resolve

    port, start_redis = _own_redis(tmp_path)
    redis_pid = start_redis()
    hold_midway(fake_providers, 2)
    env = {
        **os.environ,
        **MIDWAY,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "BOOKWARM_HOME": str(tmp_path / "home"),
        "BOOKWARM_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        **extra,
    }
    settings = resolve(env)
    cmd = [sys.executable, "-m", "bookwarm", "warm", library(tmp_path, *NAMES), "--max-depth", "1", "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(asyncio.run(processed(settings))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
            time.sleep(0.05)
    except BaseException:
        proc.kill()
        os.kill(redis_pid, signal.SIGKILL)
        raise
    return proc, settings, env, start_redis, redis_pid


def test_a_redis_blip_mid_job_is_ridden_out(flow_env, tmp_path, fake_providers):
    """Redis SIGKILLed midway and back 2 s later (a restart, a failover): the job goes on as if
    nothing happened: exit 0, every author warmed once, no dead letter, no claim left."""
    # claims live their production 60 s (the flows' tests use 3 s): a held author's claim outlives
    # the outage, as in production, where 3 s would make it a dead letter for the blip
    proc, settings, _, start_redis, redis_pid = _warming_on_own_redis(
        tmp_path, fake_providers, BOOKWARM_CLAIM_TTL_S="60"
    )
    try:
        os.kill(redis_pid, signal.SIGKILL)
        time.sleep(2.0)  # the blip itself: Redis is away this long (the ride-out is 9.5 s)
        redis_pid = start_redis()
        release_holds(fake_providers)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        done = json.loads(out)
        assert done["status"] == "completed" and done["authors_failed"] == 0, done
        assert done["authors_not_started"] == 0
        _add_up(done)
        assert {"neil-gaiman", "terry-pratchett", "todd-barton", "jack-thorne"} <= set(
            asyncio.run(processed(settings))
        )
        assert asyncio.run(_claims_left(settings)) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        os.kill(redis_pid, signal.SIGKILL)


def test_redis_lost_mid_job_names_the_job_and_how_to_resume(flow_env, tmp_path, fake_providers):
    """Redis gone for good midway (longer than the hand-over points ride out): one line naming Redis,
    the job and `bookwarm resume`, `--json` still prints what it has; Redis back, resume finishes."""
    # The same code as by default, with shorter waits: every Redis call rides out 2 s, the
    # hand-over points 2 s more (9.5 s and 15.5 s by default)
    patience = {"BOOKWARM_REDIS_RIDE_OUT_S": "2", "BOOKWARM_HANDOVER_PATIENCE_S": "2"}
    began = datetime.now(UTC)
    proc, _, env, start_redis, redis_pid = _warming_on_own_redis(tmp_path, fake_providers, **patience)
    try:
        os.kill(redis_pid, signal.SIGKILL)
        release_holds(fake_providers)
        killed_at = time.monotonic()
        out, err = proc.communicate(timeout=300)
        print(f"exited {time.monotonic() - killed_at:.1f} s after Redis was killed for good")
    finally:
        if proc.poll() is None:
            proc.kill()
    said = [line for line in err.splitlines() if line.startswith("bookwarm: ")]
    assert proc.returncode == 1 and "Traceback" not in err, err[-3000:]
    assert len(said) == 1 and "Redis" in said[0], err[-3000:]
    partial = json.loads(out)
    job_id = partial["job_id"]
    assert f"job {job_id}" in said[0] and f"bookwarm resume {job_id}" in said[0], said
    assert partial["status"] == "failed"

    redis_pid = start_redis()
    try:
        resumed = _resume_cli(env, job_id)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        finished = json.loads(resumed.stdout)
        assert finished["authors_not_started"] == 0
        # authors Redis could not record as dead letters were not dead: the UI shows none failed
        assert finished["authors_failed"] == 0 and asyncio.run(_failed_dead_letter_runs(began)) == []
    finally:
        os.kill(redis_pid, signal.SIGKILL)


async def _failed_dead_letter_runs(since: datetime) -> list[str]:
    """Names of Failed `dead-letter/…` task runs that started since ``since`` (the tests of a worker
    run one at a time on its Prefect server)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        TaskRunFilter,
        TaskRunFilterName,
        TaskRunFilterStartTime,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    async with get_client() as client:
        runs = await client.read_task_runs(
            task_run_filter=TaskRunFilter(
                name=TaskRunFilterName(like_="dead-letter/"),
                start_time=TaskRunFilterStartTime(after_=since),
                state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.FAILED])),
            )
        )
    return [run.name for run in runs]


def test_deployments_serve_stops_on_sigterm_while_its_server_is_down(flow_env, tmp_path, own_prefect_server):
    """Prefect's runner would wait on its client's retries to a dead server; bookwarm's stops within
    its grace (5 s) after a SIGTERM. (``flow_env``: the session's Redis and S3, so the CLI starts
    no local services of its own to leave behind.)"""
    import httpx

    api = f"http://127.0.0.1:{own_prefect_server['port']}/api"
    env = {**os.environ, "PREFECT_API_URL": api, "BOOKWARM_HOME": str(tmp_path / "h")}
    log = tmp_path / "serve.log"
    serve = subprocess.Popen(
        [sys.executable, "-m", "bookwarm", "deployments", "serve"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        # the runner's loop is going once it has polled for its deployments' runs: they read READY
        while (answer := httpx.get(f"{api}/deployments/name/enrich/enrich")).status_code != 200 or (
            answer.json().get("status") != "READY"
        ):
            assert serve.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        os.killpg(own_prefect_server["pid"], signal.SIGKILL)
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=15)  # a bound for "promptly", well under what the retries would take
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
    assert serve.returncode == 0, log.read_text()[-2000:]
