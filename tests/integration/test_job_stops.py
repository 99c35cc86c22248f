"""A job that is cancelled (by the API, or the UI's Cancel of a served deployment run) or told to stop
by SIGTERM stops cleanly and is resumed to the end.

Real parts: the session's Redis and S3, the fake providers (holding OpenLibrary's answers after two
authors, so the job is caught midway: `hold_midway`), and the test harness's Prefect API. A job that
loses a service (its Prefect server, Redis) is in test_lost_services.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bookwarm.cache.redis_client import make_redis
from bookwarm.keys import Keys
from bookwarm.providers.fake.runner import release_holds, stats
from bookwarm.warming.jobs import JobStore, summary
from bookwarm.warming.stop import stop_signal
from flows.resume import resume
from flows.warm_library import warm_library
from tests.integration.conftest import communicate_or_dump, hold_midway, processed, signal_delivered
from tests.integration.test_flows import EIGHT_AUTHORS, library

NAMES = EIGHT_AUTHORS
MIDWAY = {  # one author a batch; OpenLibrary holds its answers after two authors (hold_midway)
    "BOOKWARM_OPENLIBRARY_RPS": "500",
    "BOOKWARM_OPENLIBRARY_BATCH": "1",
}

pytestmark = pytest.mark.long  # jobs stopped midway, each resumed: several CLI runs a test


async def _jobs(settings) -> tuple[JobStore, list[str]]:
    client = make_redis(settings.redis.url)
    keys = Keys(settings.redis.key_prefix)
    ids = [
        raw.decode().removeprefix(keys.job(""))
        async for raw in client.scan_iter(match=keys.job("*"))
        if ":" not in raw.decode().removeprefix(keys.job(""))
    ]
    return JobStore(client, keys, 3600), ids


async def _claims_left(settings) -> list[str]:
    client = make_redis(settings.redis.url)
    try:
        return [k async for k in client.scan_iter(match=Keys(settings.redis.key_prefix).claim("*"))]
    finally:
        await client.aclose()


def _add_up(s: dict) -> None:
    """Every author the job (or its resume) queued is accounted for, once."""
    assert s["authors_queued"] + s["resume_found"] + s["redrive_found"] == sum(
        s[f"authors_{k}"]
        for k in ("warmed", "skipped", "partial", "review", "unknown", "failed", "not_started")
    ), s


def _resume_cli(env: dict[str, str], job_id: str) -> subprocess.CompletedProcess[str]:
    """`bookwarm resume JOB --json` as an operator runs it, with OpenLibrary's limit lifted. If it
    does not end, what each of its asyncio tasks waits on is in the failure (SIGUSR1)."""
    cmd = [sys.executable, "-m", "bookwarm", "resume", job_id, "--json"]
    proc = subprocess.Popen(
        cmd,
        env={**env, "BOOKWARM_OPENLIBRARY_RPS": "500"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = communicate_or_dump(proc, 180, "the resume")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _openlibrary_calls(port: int) -> int:
    return stats(port)["openlibrary"]["requests"]


def _asked(port: int) -> dict[str, int]:
    return dict(stats(port)["openlibrary"]["asked"])


def _asked_again(before: dict[str, int], after: dict[str, int], finished: dict[str, dict]) -> set[str]:
    """Names or OpenLibrary keys of authors finished before the resume that it asked for again."""
    slug = {n.lower().replace(" ", "-").replace(".", ""): n for n in NAMES}
    ids = {slug.get(k, k) for k in finished} | {
        r["openlibrary_key"] for r in finished.values() if r.get("openlibrary_key")
    }
    return {k for k, n in after.items() if n > before.get(k, 0) and k in ids}


async def test_cancel_stops_the_job_counts_what_is_left_and_resume_finishes(
    flow_env, tmp_path, monkeypatch, fake_providers
):
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    for name, value in MIDWAY.items():
        monkeypatch.setenv(name, value)
    hold_midway(fake_providers, 2)
    monkeypatch.setenv("BOOKWARM_PREFECT_GRACE_S", "5")  # probes every second
    # concurrency 1: four batches of one author fetched ahead at a time, so a cancel finds some unstarted
    run = asyncio.create_task(
        warm_library(library(tmp_path, *NAMES), max_depth=1, concurrency=1, return_state=True)
    )
    deadline = time.monotonic() + 120
    while len(await processed(flow_env)) < 2:
        assert not run.done() and time.monotonic() < deadline
        await asyncio.sleep(0.05)
    jobs, ids = await _jobs(flow_env)
    assert len(ids) == 1
    async with get_client() as client:  # what the UI's Cancel button does
        await client.set_flow_run_state(ids[0], Cancelling(), force=True)
    while not stop_signal(ids[0]).is_set:  # the job has seen it: what is held may answer now
        assert not run.done() and time.monotonic() < deadline
        await asyncio.sleep(0.05)
    release_holds(fake_providers)
    state = await asyncio.wait_for(run, 120)

    assert state.is_cancelled(), state
    record = summary(await jobs.get(ids[0]))
    assert record["status"] == "cancelled" and record["authors_not_started"] > 0
    assert record["authors_failed"] == 0  # nothing became a dead letter for the cancel
    _add_up(record)
    assert await _claims_left(flow_env) == []
    finished = await processed(flow_env)
    calls_before, asked_before = _openlibrary_calls(fake_providers), _asked(fake_providers)

    resumed = await resume(ids[0])
    assert resumed["status"] == "completed" and resumed["resumes"] == 1
    assert resumed["authors_not_started"] == 0 and resumed["authors_queued"] == record["authors_queued"]
    _add_up(resumed)
    done = await processed(flow_env)
    assert {"neil-gaiman", "terry-pratchett", "todd-barton", "jack-thorne"} <= set(done)
    # Only the authors the cancelled run had not finished were asked for (identity and works: two
    # calls each at most, one batch each); those it finished were not asked again.
    assert 0 < _openlibrary_calls(fake_providers) - calls_before <= 2 * len(set(done) - set(finished))
    assert _asked_again(asked_before, _asked(fake_providers), finished) == set()
    await jobs.client.aclose()


def test_cancel_from_the_ui_of_a_served_deployment_run(flow_env, tmp_path, fake_providers):
    """The UI's Cancel on a run of the served warm-library deployment: Prefect's runner stops the
    run's process; the run ends Cancelled and the job record says cancelled, its counts adding up,
    no claim left behind."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL
    from prefect.states import Cancelling

    hold_midway(fake_providers, 2)
    env = {
        **os.environ,
        **MIDWAY,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "BOOKWARM_HOME": str(tmp_path / "h"),
    }
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "bookwarm", "deployments", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    async def scenario() -> tuple[str, str]:
        async with get_client() as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    await client.read_deployment_by_name("warm-library/warm-library")
                    break
                except Exception:
                    assert serve.poll() is None and time.monotonic() < deadline, (
                        tmp_path / "serve.log"
                    ).read_text()
                    await asyncio.sleep(0.5)
            run = await run_deployment(
                "warm-library/warm-library",
                parameters={"source": library(tmp_path, *NAMES), "max_depth": 1},
                timeout=0,
            )
            while len(await processed(flow_env)) < 2:
                assert time.monotonic() < deadline + 120, (tmp_path / "serve.log").read_text()[-3000:]
                await asyncio.sleep(0.1)
            await client.set_flow_run_state(run.id, Cancelling(), force=True)
            while not (state := (await client.read_flow_run(run.id)).state).is_final():
                assert time.monotonic() < deadline + 240, state
                await asyncio.sleep(0.5)
            return str(run.id), state.type.value

    try:
        job_id, final = asyncio.run(scenario())
    finally:
        release_holds(fake_providers)
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)
        log.close()
    assert final == "CANCELLED"

    async def record() -> dict:
        jobs, _ = await _jobs(flow_env)
        try:
            return summary(await jobs.get(job_id))
        finally:
            await jobs.client.aclose()

    job = asyncio.run(record())
    assert job["status"] == "cancelled", job
    _add_up(job)
    assert job["authors_failed"] == 0
    assert asyncio.run(_claims_left(flow_env)) == []


def test_sigterm_ends_the_cli_in_one_line_with_the_resume_command(flow_env, tmp_path, fake_providers):
    """SIGTERM (a supervisor, `kill`) to `bookwarm warm` midway: one line naming the job and the
    resume command, no traceback, the record says interrupted with no claim left, and a resume
    finishes the job."""
    from prefect.settings import PREFECT_API_URL

    hold_midway(fake_providers, 2)
    env = {
        **os.environ,
        **MIDWAY,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "BOOKWARM_HOME": str(tmp_path / "home"),
    }
    cmd = [sys.executable, "-m", "bookwarm", "warm", library(tmp_path, *NAMES), "--max-depth", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(asyncio.run(processed(flow_env))) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    signal_delivered(proc.pid, signal.SIGTERM)  # its handler stops the job: what is in flight may finish
    release_holds(fake_providers)
    _out, err = communicate_or_dump(proc, 60, "the CLI told to stop by SIGTERM")

    async def read() -> tuple[list[str], dict]:
        jobs, ids = await _jobs(flow_env)
        try:
            return ids, summary(await jobs.get(ids[0]) or {})
        finally:
            await jobs.client.aclose()

    ids, record = asyncio.run(read())
    assert len(ids) == 1
    said = [line for line in err.splitlines() if not line.startswith("[depth ")]
    assert proc.returncode == 1 and "Traceback" not in err, err[-3000:]
    assert len(said) == 1 and ids[0] in said[0] and f"bookwarm resume {ids[0]}" in said[0], said
    assert record["status"] == "interrupted" and record["authors_not_started"] > 0, record
    _add_up(record)
    assert asyncio.run(_claims_left(flow_env)) == []
    assert asyncio.run(_run_state(ids[0])) != "RUNNING"  # the UI shows the run ended
    resumed = _resume_cli(env, ids[0])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout)["authors_not_started"] == 0


def _states_on(port: int, flow_run_id: str) -> tuple[str, list[str]]:
    """A run's state type on the server at ``port``, and its subflow runs' (REST, as the UI reads)."""
    import httpx

    api = f"http://127.0.0.1:{port}/api"
    own = httpx.get(f"{api}/flow_runs/{flow_run_id}", timeout=10).json()["state"]["type"]
    children = httpx.post(
        f"{api}/flow_runs/filter",
        json={"flow_runs": {"parent_flow_run_id": {"any_": [flow_run_id]}}, "limit": 200},
        timeout=10,
    ).json()
    return own, [c["state"]["type"] for c in children]


async def _run_state(flow_run_id: str) -> str:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
    return run.state_type.value if run.state_type else ""
