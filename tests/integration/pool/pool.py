"""What the work-pool tests share: the job's environment, worker processes (`bookwarm workers
start`), the `bookwarm warm` job, and reads of the job's record and shard runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bookwarm.cache.redis_client import make_redis
from bookwarm.keys import Keys
from bookwarm.providers.fake.runner import provider_env, stats
from bookwarm.services.process import stop
from bookwarm.warming.jobs import JobStore
from tests.conftest import PROJECT
from tests.integration.conftest import processed

# + one co-author each at depth 1, named by that author alone: a co-author is found only if the shard
# that warmed its library author handed it over (a crashed shard's finished authors included)
LIBRARY_AUTHORS = 24
CLAIM_TTL_S = 5
MIDWAY = {"BOOKWARM_OPENLIBRARY_RPS": "500", "BOOKWARM_OPENLIBRARY_BATCH": "1"}  # one author a batch


def env_for(
    pool_server: dict[str, str], port: int, prefix: str, tmp_path: Path, **extra: str
) -> dict[str, str]:
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

    def __init__(
        self,
        env: dict[str, str],
        tmp_path: Path,
        count: int = 3,
        shards_at_once: int = 3,
        more: tuple[str, ...] = (),
    ) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for i in range(count):
            name = f"w{i}"
            home = tmp_path / name
            home.mkdir(parents=True)
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
                    str(shards_at_once),
                    *more,
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


def communicate_or_explain(
    job: subprocess.Popen[str], api_url: str, timeout_s: float, worker_logs: Callable[[], str] = lambda: ""
) -> tuple[str, str]:
    """The job's output, or, when it does not end within ``timeout_s``, an AssertionError saying
    what the job printed, where each shard run of the server stands, whether each unfinished run
    still has a process, and what the asyncio tasks and threads of the job and of those processes
    wait on (`kill -USR1`: the job's on its stderr, a run's in its log on the Prefect API, since a
    worker keeps no output of its runs), with ``worker_logs()``: a hang is explained, not only
    timed out."""
    try:
        return job.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        unfinished = [
            r for r in asyncio.run(shard_runs(api_url)) if not (r.state_type and r.state_type.value in FINAL)
        ]
        processes = {str(r.id): flow_run_process(api_url, str(r.id)) for r in unfinished}
        for process in processes.values():
            with contextlib.suppress(psutil.Error, AttributeError):
                process.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
        job.send_signal(signal.SIGUSR1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            job.communicate(timeout=5)  # the dumps are written, and the runs' logs sent, meanwhile
        job.kill()
        _, err = job.communicate()
        states = sorted(
            (r.name, r.state_name, r.labels.get("prefect.worker.name"), str(r.parameters.get("job_id"))[:8])
            for r in asyncio.run(shard_runs(api_url))
        )
        explained = "".join(
            f"--- unfinished {r.name} {r.id} ({r.state_name}, {r.labels.get('prefect.worker.name')}): "
            f"{_process_said(processes[str(r.id)])}\n{asyncio.run(run_story(api_url, r.id))[-12000:]}\n"
            for r in unfinished
        )
        raise AssertionError(
            f"the job did not end in {timeout_s:g} s: {states}\n{err[-12000:]}\n{explained}{worker_logs()}"
        ) from None


def worker_logs_of(said: Path) -> Callable[[], str]:
    """The tail of the supervisor output (`bookwarm workers start`) of each Workers folder under
    ``said``, and of each worker log it names."""

    def read() -> str:
        logs = ""
        for path in said.glob("w*/workers.err"):
            text = path.read_text(errors="replace")
            logs += f"--- {path.parent.name}:\n{text[-1500:]}\n"
            for log in sorted(set(re.findall(r"log (\S+\.log)", text))):
                logs += f"--- {log}:\n{Path(log).read_text(errors='replace')[-4000:]}\n"
        return logs

    return read


def _process_said(process: psutil.Process | None) -> str:
    if process is None:
        return "no process of its own on this machine"
    with contextlib.suppress(psutil.Error):
        times = process.cpu_times()
        return f"pid {process.pid} {process.status()}, parent {process.ppid()}, cpu {times.user + times.system:.1f} s"
    return f"pid {process.pid} gone"


def flow_run_processes(api_url: str) -> list[psutil.Process]:
    """The processes of flow runs (`python -m prefect.engine`) that talk to the server at ``api_url``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if (
                "prefect.engine" in " ".join(proc.info["cmdline"] or ())
                and proc.environ().get("PREFECT_API_URL") == api_url
            ):
                found.append(proc)
    return found


def flow_run_process(api_url: str, flow_run_id: str) -> psutil.Process | None:
    """The process (`python -m prefect.engine`) running ``flow_run_id`` against ``api_url``, if any."""
    for process in flow_run_processes(api_url):
        with contextlib.suppress(psutil.Error):
            if process.environ().get("PREFECT__FLOW_RUN_ID") == flow_run_id:
                return process
    return None


async def run_story(api_url: str, flow_run_id: Any) -> str:
    """A flow run's states (with their messages) and its logs on the Prefect API, oldest first."""
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    async with PrefectClient(api_url) as client:
        states = await client.read_flow_run_states(flow_run_id)
        logs = await client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), sort=LogSort.TIMESTAMP_ASC
        )
    lines = [f"{s.timestamp:%H:%M:%S.%f} state {s.name}: {(s.message or '')[:200]}" for s in states]
    lines += [f"{log.timestamp:%H:%M:%S.%f} log {log.level}: {log.message}" for log in logs]
    return "\n".join(sorted(lines))


def warm(env: dict[str, str], csv_path: Path, *more: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bookwarm", "warm", str(csv_path), "--max-depth", "1", "--json", *more],
        env=env,
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def shard_runs(api_url: str) -> list[Any]:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api_url) as client:
        runs = await client.read_flow_runs(limit=200)
    return [r for r in runs if r.name.startswith("warm-authors/")]


def runs_of_job(api_url: str, job_id: str) -> list[Any]:
    return [r for r in asyncio.run(shard_runs(api_url)) if r.parameters.get("job_id") == job_id]


async def record_of(settings, job_id: str) -> tuple[dict, set[str]]:
    client = make_redis(settings.redis.url)
    try:
        jobs = JobStore(client, Keys(settings.redis.key_prefix), 3600)
        return await jobs.get(job_id) or {}, await jobs.counted(job_id)
    finally:
        await client.aclose()


async def dead_letters(settings, job_id: str) -> dict[str, str]:
    """The job's dead letters with their reasons (what a failed assertion should show)."""
    client = make_redis(settings.redis.url)
    try:
        raw = await client.hgetall(Keys(settings.redis.key_prefix).dead_letters(job_id))
        return {k.decode(): v.decode()[:300] for k, v in raw.items()}
    finally:
        await client.aclose()


async def job_ids(settings) -> list[str]:
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


def wait_for(what: str, check, timeout_s: float, poll_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def asked(port: int) -> dict[str, int]:
    return dict(stats(port)["openlibrary"]["asked"])


def works_asked(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """How often each OpenLibrary author key was asked for its works during the test."""
    return {k: n - before.get(k, 0) for k, n in after.items() if k.startswith("OL") and n > before.get(k, 0)}


ALL_KEYS = {f"OL{i + 1}A" for i in range(2 * LIBRARY_AUTHORS)}


FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


async def cancel_job(api_url: str, flow_run_id: str) -> None:
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

    def logs(self) -> str:
        """The tail of each worker's log (where its runs' output, task dumps included, goes)."""
        said = self.said()
        return "".join(
            f"--- {log}:\n{Path(log).read_text(errors='replace')[-6000:]}\n"
            for log in sorted(set(re.findall(r"log (\S+\.log)", said)))
            if Path(log).exists()
        )

    def pids(self) -> dict[str, int]:
        """Each worker's name -> its newest pid."""
        import re

        return {m[1]: int(m[2]) for m in re.finditer(r"^worker (\S+) \(pid (\d+)\)", self.said(), re.M)}

    def close(self) -> None:
        if self.proc.poll() is None:
            stop(self.proc.pid, 15.0)


async def force_state(api_url: str, flow_run_id: Any, state_type: str) -> None:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import StateType
    from prefect.states import State

    async with PrefectClient(api_url) as client:
        await client.set_flow_run_state(flow_run_id, State(type=StateType(state_type)), force=True)


def shard_midway(settings, api: str, job_id: str) -> Any:
    """A Running shard run of the job with at least 2 authors done and more than 2 left, or None."""
    counted = asyncio.run(record_of(settings, job_id))[1]
    for run in runs_of_job(api, job_id):
        done = set(run.parameters["author_keys"]) & counted
        if run.state_name == "Running" and 2 <= len(done) < len(run.parameters["author_keys"]) - 2:
            return run
    return None


def slugs(settings) -> dict[str, str]:
    """author key (as queued) -> OpenLibrary key, from the processed records."""
    return {
        k: r["openlibrary_key"]
        for k, r in asyncio.run(processed(settings)).items()
        if r.get("openlibrary_key")
    }


async def deployment_run(api_url: str, deployment: str, parameters: dict[str, Any]) -> Any:
    """A run of one of the pool's deployments, as the UI's Run or the REST API creates it."""
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api_url) as client:
        found = await client.read_deployment_by_name(deployment)
        return await client.create_flow_run_from_deployment(found.id, parameters=parameters)


async def flow_run(api_url: str, flow_run_id: Any) -> Any:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api_url) as client:
        return await client.read_flow_run(flow_run_id)
