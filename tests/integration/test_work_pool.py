"""Shards on a work pool: real `bookwarm workers start` processes pull the shards of one job from a
Prefect server on PostgreSQL (`LocalServices.up(postgres=True)`, as `bookwarm services up --postgres`),
with the deployments registered by `prefect deploy --all` from deployments/prefect.yaml.

Each worker is a separate process with its own PREFECT_HOME. The job is a `bookwarm warm` CLI
process with BOOKWARM_WORK_POOL set; the fake providers count how often each author was asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from bookwarm.cache.redis_client import make_redis
from bookwarm.keys import Keys
from bookwarm.providers.fake.runner import FakeProviders, provider_env, set_faults, stats
from bookwarm.providers.fake.server import PROVIDERS, Faults
from bookwarm.services.local import LocalServices
from bookwarm.services.process import stop
from bookwarm.settings import resolve
from bookwarm.warming.jobs import JobStore, summary
from tests.bench.bench_warm import make_catalog, write_library
from tests.conftest import PROJECT
from tests.integration.conftest import processed
from tests.integration.test_job_stops import _claims_left

# + one co-author each at depth 1, named by that author alone: a co-author is found only if the shard
# that warmed its library author handed it over (a crashed shard's finished authors included)
LIBRARY_AUTHORS = 24
CLAIM_TTL_S = 5


@pytest.fixture(scope="module")
def pool_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Redis, S3 and a Prefect server on PostgreSQL of this module's own, the deployments deployed."""
    home = tmp_path_factory.mktemp("pool-services")
    local = LocalServices(home, stop_grace_s=5.0)
    try:
        state = local.up(postgres=True)
        assert state.postgres_pid, "the Prefect server is not on PostgreSQL"
        env = {
            **os.environ,
            **state.env(),
            "BOOKWARM_HOME": str(home),
            "PREFECT_HOME": str(home / "cli-prefect"),
        }
        deployed = subprocess.run(
            [sys.executable, "-m", "bookwarm", "deployments", "deploy"],
            env=env,
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert deployed.returncode == 0, deployed.stderr[-2000:]
        yield {**state.env(), "BOOKWARM_HOME": str(home)}
    finally:
        local.down()


@pytest.fixture(scope="module")
def pool_providers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """Fake providers over a generated catalog; yields (port, the library CSV)."""
    home = tmp_path_factory.mktemp("pool-providers")
    library = make_catalog(home / "catalog.json", LIBRARY_AUTHORS, coauthors=LIBRARY_AUTHORS)
    csv_path = write_library(home / "library.csv", library)
    runner = FakeProviders(home)
    state = runner.up(home / "catalog.json", real_limits=False)
    try:
        yield state.port, csv_path
    finally:
        runner.down()


def _env(pool_server: dict[str, str], port: int, prefix: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        **pool_server,
        **provider_env(port),
        "BOOKWARM_REDIS_PREFIX": prefix,
        "BOOKWARM_WORK_POOL": "bookwarm",
        "BOOKWARM_CLAIM_TTL_S": str(CLAIM_TTL_S),
        "BOOKWARM_SHARD_LOST_AFTER_S": "45",  # the automation's window: heartbeats come every 30 s
        "BOOKWARM_SHARD_POLL_S": "1",
        "BOOKWARM_GOOGLE_BOOKS_RPS": "500",
        "BOOKWARM_ISBNDB_RPS": "500",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_HOME": str(tmp_path / "job-prefect"),
        **extra,
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


class Workers:
    """Three `bookwarm workers start 1` processes, each with an environment (PREFECT_HOME) of its own."""

    def __init__(self, env: dict[str, str], tmp_path: Path, count: int = 3) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for i in range(count):
            name = f"w{i}"
            home = tmp_path / name
            home.mkdir()
            own = {**env, "PREFECT_HOME": str(home / "prefect")}
            self.procs[name] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bookwarm",
                    "workers",
                    "start",
                    "1",
                    "--name",
                    name,
                    "--shards-at-once",
                    "3",
                ],
                env=own,
                cwd=PROJECT,
                stdout=subprocess.DEVNULL,
                stderr=(home / "workers.err").open("wb"),
                start_new_session=True,
            )

    def kill(self, worker_name: str) -> None:
        """SIGKILL a worker and everything it started, as a machine that dies."""
        proc = self.procs[worker_name.rsplit("-", 1)[0]]
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.send_signal(signal.SIGKILL)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                stop(proc.pid, 10.0)


def _warm(env: dict[str, str], csv_path: Path, *more: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bookwarm", "warm", str(csv_path), "--max-depth", "1", "--json", *more],
        env=env,
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _shard_runs(api_url: str) -> list[Any]:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api_url) as client:
        runs = await client.read_flow_runs(limit=200)
    return [r for r in runs if r.name.startswith("warm-authors/")]


def _runs_of_job(api_url: str, job_id: str) -> list[Any]:
    return [r for r in asyncio.run(_shard_runs(api_url)) if r.parameters.get("job_id") == job_id]


async def _record(settings, job_id: str) -> tuple[dict, set[str]]:
    client = make_redis(settings.redis.url)
    try:
        jobs = JobStore(client, Keys(settings.redis.key_prefix), 3600)
        return await jobs.get(job_id) or {}, await jobs.counted(job_id)
    finally:
        await client.aclose()


async def _job_ids(settings) -> list[str]:
    client = make_redis(settings.redis.url)
    keys = Keys(settings.redis.key_prefix)
    try:
        return [
            raw.decode().removeprefix(keys.job(""))
            async for raw in client.scan_iter(match=keys.job("*"))
            if ":" not in raw.decode().removeprefix(keys.job(""))
        ]
    finally:
        await client.aclose()


def _wait_for(what: str, check, timeout_s: float, poll_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _asked(port: int) -> dict[str, int]:
    return dict(stats(port)["openlibrary"]["asked"])


def _works_asked(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """How often each OpenLibrary author key was asked for its works during the test."""
    return {k: n - before.get(k, 0) for k, n in after.items() if k.startswith("OL") and n > before.get(k, 0)}


ALL_KEYS = {f"OL{i + 1}A" for i in range(2 * LIBRARY_AUTHORS)}


def test_three_workers_share_the_shards_of_one_job_and_warm_each_author_once(
    pool_server, pool_providers, tmp_path
):
    port, csv_path = pool_providers
    set_faults(port, {p: Faults() for p in PROVIDERS})
    env = _env(pool_server, port, "wp1:", tmp_path, BOOKWARM_OPENLIBRARY_RPS="500")
    settings = resolve(env)
    workers = Workers(env, tmp_path)
    try:
        before = _asked(port)
        job = _warm(env, csv_path, "--shard-size", "4")
        out, err = job.communicate(timeout=400)
        assert job.returncode == 0, err[-3000:]
        result = json.loads(out)
        assert result["status"] == "completed"
        assert result["authors_queued"] == len(ALL_KEYS)
        # the CLI's progress, fed by the workers' shards through Redis (plain lines: stderr is a pipe)
        assert "[depth 0] " in err and " authors " in err, err[-2000:]
        records = asyncio.run(processed(settings))
        assert {r["openlibrary_key"] for r in records.values()} == ALL_KEYS
        runs = _runs_of_job(pool_server["PREFECT_API_URL"], result["job_id"])
        assert len(runs) >= 12  # 24 library authors in shards of 4, then 24 co-authors
        assert all(r.state_name == "Completed" for r in runs), [(r.name, r.state_name) for r in runs]
        ran_on = {r.labels.get("prefect.worker.name") for r in runs}
        assert len(ran_on - {None}) >= 2, ran_on
        # every author's works asked for exactly once: no author fetched twice across workers
        works = _works_asked(before, _asked(port))
        assert set(works) == ALL_KEYS and set(works.values()) == {1}, works
    finally:
        workers.close()


def _slow_job(pool_server, pool_providers, tmp_path, prefix: str):
    """Three workers, and a job in shards of 8 whose authors finish ~1 s apart (one author a batch,
    2 OpenLibrary calls/s shared by all workers): (settings, API URL, workers, job process, job id)."""
    port, csv_path = pool_providers
    set_faults(port, {p: Faults() for p in PROVIDERS})
    env = _env(
        pool_server, port, prefix, tmp_path, BOOKWARM_OPENLIBRARY_RPS="2", BOOKWARM_OPENLIBRARY_BATCH="1"
    )
    settings = resolve(env)
    workers = Workers(env, tmp_path)
    try:
        job = _warm(env, csv_path, "--shard-size", "8")
        job_id = _wait_for("the job's record", lambda: asyncio.run(_job_ids(settings)), 120)[0]
    except BaseException:
        workers.close()
        raise
    return settings, pool_server["PREFECT_API_URL"], workers, job, job_id


def test_a_worker_killed_mid_shard_loses_nothing(pool_server, pool_providers, tmp_path):
    """SIGKILL a worker (and its shard's process) in the middle of a shard: Prefect's automation
    marks the run Crashed when its heartbeats stop, the job runs the shard's authors again once the
    dead worker's claims have lapsed, and authors finished before the kill are not asked again."""
    port, _ = pool_providers
    before = _asked(port)
    settings, api, workers, job, job_id = _slow_job(pool_server, pool_providers, tmp_path, "wp2:")
    try:
        victim = _wait_for("a shard run midway", lambda: _a_shard_midway(settings, api, job_id), 240)
        worker = victim.labels["prefect.worker.name"]
        workers.kill(worker)
        counted_at_kill = asyncio.run(_record(settings, job_id))[1]
        shard_keys = set(victim.parameters["author_keys"])
        in_flight = shard_keys - counted_at_kill
        done_before = shard_keys & counted_at_kill

        out, err = job.communicate(timeout=480)
        assert job.returncode == 0, err[-3000:]
        result = json.loads(out)
        assert result["status"] == "completed", result
        assert result["shard_retries"] >= 1
        crashed = next(r for r in _runs_of_job(api, job_id) if r.id == victim.id)
        assert crashed.state_name == "Crashed", crashed.state
        # every author cached, none lost, and the summary adds up
        record, counted = asyncio.run(_record(settings, job_id))
        s = summary(record)
        assert s["authors_not_started"] == 0 and s["authors_failed"] == 0, s
        assert len(counted) == len(ALL_KEYS)
        assert {r["openlibrary_key"] for r in asyncio.run(processed(settings)).values()} == ALL_KEYS
        # works asked again: only for the killed shard's authors that were in flight
        works = _works_asked(before, _asked(port))
        repeated = {k for k, n in works.items() if n > 1}
        slug = {v: k for k, v in _slugs(settings).items()}
        repeated_authors = {slug.get(k, k) for k in repeated}
        print(f"killed {worker}: {len(in_flight)} authors in flight, works asked again for {len(repeated)}")
        assert repeated_authors <= in_flight, (repeated_authors, in_flight)
        assert not repeated_authors & done_before
    finally:
        workers.close()


def _a_shard_midway(settings, api: str, job_id: str) -> Any:
    """A Running shard run of the job with at least 2 authors done and more than 2 left, or None."""
    counted = asyncio.run(_record(settings, job_id))[1]
    for run in _runs_of_job(api, job_id):
        done = set(run.parameters["author_keys"]) & counted
        if run.state_name == "Running" and 2 <= len(done) < len(run.parameters["author_keys"]) - 2:
            return run
    return None


def _slugs(settings) -> dict[str, str]:
    """author key (as queued) -> OpenLibrary key, from the processed records."""
    return {
        k: r["openlibrary_key"]
        for k, r in asyncio.run(processed(settings)).items()
        if r.get("openlibrary_key")
    }


def test_cancelling_the_job_cancels_its_shard_runs(pool_server, pool_providers, tmp_path):
    settings, api, workers, job, job_id = _slow_job(pool_server, pool_providers, tmp_path, "wp3:")
    try:
        _wait_for(
            "a shard run going",
            lambda: [r for r in _runs_of_job(api, job_id) if r.state_name == "Running"],
            240,
        )
        asyncio.run(_cancel(api, job_id))
        _out, err = job.communicate(timeout=240)
        assert job.returncode == 1 and "cancelled" in err, err[-2000:]
        record, _ = asyncio.run(_record(settings, job_id))
        assert record["status"] == "cancelled"
        runs = _wait_for(
            "every shard run final",
            lambda: (
                lambda rs: rs if all(r.state_type and r.state_type.value in FINAL for r in rs) else None
            )(_runs_of_job(api, job_id)),
            60,
        )
        assert any(r.state_name == "Cancelled" for r in runs), [(r.name, r.state_name) for r in runs]
        assert not [r for r in runs if r.state_name in ("Running", "Pending", "Scheduled")]
        # no claim outlives its TTL
        _wait_for(
            "every claim released or lapsed", lambda: not asyncio.run(_claims_left(settings)), CLAIM_TTL_S + 5
        )
    finally:
        workers.close()


FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


async def _cancel(api_url: str, flow_run_id: str) -> None:
    """What the UI's Cancel does: the job's run goes Cancelling."""
    from prefect.client.orchestration import PrefectClient
    from prefect.states import Cancelling

    async with PrefectClient(api_url) as client:
        await client.set_flow_run_state(flow_run_id, Cancelling(), force=True)


class Supervisor:
    """The README's block: one `bookwarm workers start 3` process (default names), its workers'
    names and pids read from what it prints."""

    def __init__(self, env: dict[str, str], tmp_path: Path, count: int = 3) -> None:
        self.err_path = tmp_path / "supervisor.err"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bookwarm", "workers", "start", str(count), "--shards-at-once", "3"],
            env={**env, "PREFECT_HOME": str(tmp_path / "workers-prefect")},
            cwd=PROJECT,
            stdout=subprocess.DEVNULL,
            stderr=self.err_path.open("wb"),
            start_new_session=True,
        )

    def said(self) -> str:
        return self.err_path.read_text(errors="replace")

    def pids(self) -> dict[str, int]:
        """Each worker's name -> its newest pid."""
        import re

        return {m[1]: int(m[2]) for m in re.finditer(r"^worker (\S+) \(pid (\d+)\)", self.said(), re.M)}

    def close(self) -> None:
        if self.proc.poll() is None:
            stop(self.proc.pid, 15.0)


@pytest.mark.parametrize("with_children", [True, False], ids=["with-children", "worker-only"])
def test_one_dead_worker_of_three_the_others_go_on_and_the_job_completes(
    pool_server, pool_providers, tmp_path, with_children
):
    """`bookwarm workers start 3`, one worker SIGKILLed while its shard is midway (with the shard's
    process, as a machine that dies, or alone): the other two keep running, the dead one is
    started again, and the job completes by itself with every author cached."""
    port, csv_path = pool_providers
    set_faults(port, {p: Faults() for p in PROVIDERS})
    prefix = f"wp5{'c' if with_children else 'w'}:"
    env = _env(
        pool_server, port, prefix, tmp_path, BOOKWARM_OPENLIBRARY_RPS="2", BOOKWARM_OPENLIBRARY_BATCH="1"
    )
    settings = resolve(env)
    workers = Supervisor(env, tmp_path)
    try:
        pids = _wait_for(
            "three workers started", lambda: (lambda p: p if len(p) == 3 else None)(workers.pids()), 60
        )
        assert len(set(pids)) == 3 and all(str(workers.proc.pid) in name for name in pids), pids
        job = _warm(env, csv_path, "--shard-size", "8")
        job_id = _wait_for("the job's record", lambda: asyncio.run(_job_ids(settings)), 120)[0]

        victim = _wait_for(
            "a shard run midway",
            lambda: _a_shard_midway(settings, pool_server["PREFECT_API_URL"], job_id),
            240,
        )
        name = victim.labels["prefect.worker.name"]
        pid = pids[name]
        family = [
            psutil.Process(pid),
            *(psutil.Process(pid).children(recursive=True) if with_children else []),
        ]
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.send_signal(signal.SIGKILL)

        out, err = job.communicate(timeout=480)
        assert job.returncode == 0, err[-3000:]
        result = json.loads(out)
        assert result["status"] == "completed" and result["authors_not_started"] == 0, result
        assert result["authors_failed"] == 0, result
        assert {r["openlibrary_key"] for r in asyncio.run(processed(settings)).values()} == ALL_KEYS
        # the supervisor never stopped, the other two workers never died, the dead one came back
        assert workers.proc.poll() is None, workers.said()[-2000:]
        for other, other_pid in pids.items():
            if other != name:
                assert psutil.pid_exists(other_pid) and workers.pids()[other] == other_pid, workers.said()
        assert f"worker {name} exited" in workers.said() and workers.pids()[name] != pid, workers.said()
    finally:
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
    env = _env(
        pool_server,
        port,
        "wp6:",
        tmp_path,
        BOOKWARM_OPENLIBRARY_RPS="500",
        BOOKWARM_SHARD_START_TIMEOUT_S="8",
    )
    settings = resolve(env)
    started = time.monotonic()
    job = _warm(env, csv_path)
    job_id = _wait_for("the job's record", lambda: asyncio.run(_job_ids(settings)), 120)[0]
    first = _wait_for("its shard run", lambda: _runs_of_job(api, job_id), 60)[0]
    asyncio.run(_force(api, first.id, "PENDING"))  # as a worker that took it and died would leave it
    _out, err = job.communicate(timeout=180)
    took = time.monotonic() - started
    said = [line for line in err.splitlines() if not line.startswith("[depth ")]
    assert job.returncode == 1 and "Traceback" not in err, err[-3000:]
    assert len(said) == 1, said
    assert (
        "no worker is taking shards of work pool 'bookwarm'" in said[0]
        and f"bookwarm resume {job_id}" in said[0]
    )
    print(f"no live worker: told after {took:.1f} s")
    runs = {r.id: r for r in _runs_of_job(api, job_id)}
    assert runs[first.id].state_name == "Crashed" and "not started" in (runs[first.id].state.message or "")
    assert len(runs) >= 2  # submitted again after the crash
    assert all(r.state_type and r.state_type.value in FINAL for r in runs.values()), [
        (r.name, r.state_name) for r in runs.values()
    ]
    record, _ = asyncio.run(_record(settings, job_id))
    assert record["status"] == "interrupted" and int(record["shard_retries"]) >= 1, record

    workers = Workers(env, tmp_path, count=1)
    try:
        resumed = subprocess.run(
            [sys.executable, "-m", "bookwarm", "resume", job_id, "--json"],
            env=env,
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert json.loads(resumed.stdout)["authors_not_started"] == 0
    finally:
        workers.close()


async def _force(api_url: str, flow_run_id: Any, state_type: str) -> None:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import StateType
    from prefect.states import State

    async with PrefectClient(api_url) as client:
        await client.set_flow_run_state(flow_run_id, State(type=StateType(state_type)), force=True)
