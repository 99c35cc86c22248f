"""Benchmark: one job's shards on 1, 2 and 3 process workers of a work pool, on a Prefect server backed
by PostgreSQL (`bookwarm services up --postgres`), then 3 workers at the providers' real limits.

A generated library (tests.bench.bench_warm.make_catalog) at depth 1, warmed by a `bookwarm warm` CLI
process with BOOKWARM_WORK_POOL set; workers started by `bookwarm workers start N`. Reported per
run: authors/s (until every bibliography is cached), CPU seconds per author of each process (the
Prefect server, PostgreSQL, the workers with the shard processes they ran, the job's process, Redis,
the object store), and the time from each shard's submission to its start.

Usage: python -m tests.bench.bench_scale [--authors 1334] [--limited 1334] [--workers 1,2,3]
(1,334 library authors + 667 co-authors = 2,001 authors).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bookwarm.providers.fake.runner import FakeProviders, provider_env, set_faults, stats
from bookwarm.providers.fake.server import PROVIDERS
from bookwarm.services.local import LocalServices
from bookwarm.services.process import stop
from tests.bench import target
from tests.bench.bench_warm import benchmark_faults, make_catalog, quota_used, write_library
from tests.conftest import PROJECT

SHARD_SIZE = 200


def cpu_s(pid: int, *, with_exited_children: bool = False) -> float:
    """CPU seconds of a process tree; with ``with_exited_children``, also of the processes each
    member reaped (a worker's finished shard runs, PostgreSQL's finished backends)."""
    try:
        root = psutil.Process(pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
            if with_exited_children:
                total += t.children_user + t.children_system
        return total
    except psutil.NoSuchProcess:
        return 0.0


def postgres_cpu(postmaster: int) -> float:
    """The postmaster and its backends; exited backends are reaped by the postmaster."""
    return cpu_s(postmaster, with_exited_children=True)


async def shard_delays(api_url: str, job_id: str) -> tuple[list[float], list[float]]:
    """Per shard run: seconds from submission until a worker took it (a free slot), and from then
    until its flow began (the worker starting a Python process for it)."""
    from prefect.client.orchestration import PrefectClient

    waited, started = [], []
    async with PrefectClient(api_url) as client:
        runs = await client.read_flow_runs(limit=200)
        for run in runs:
            if not run.name.startswith("warm-authors/") or run.parameters.get("job_id") != job_id:
                continue
            states = {s.type.value: s.timestamp for s in await client.read_flow_run_states(run.id)}
            if "PENDING" in states and "RUNNING" in states:
                waited.append((states["PENDING"] - run.created).total_seconds())
                started.append((states["RUNNING"] - states["PENDING"]).total_seconds())
    return waited, started


def run_job(
    label: str,
    env: dict[str, str],
    csv_path: Path,
    workers: int,
    state,
    port: int,
    limited: bool,
    shard_size: int = SHARD_SIZE,
) -> None:
    worker_env = {**env, "PREFECT_HOME": str(Path(env["BOOKWARM_HOME"]) / f"workers-{label}")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bookwarm",
            "workers",
            "start",
            str(workers),
            "--name",
            f"bench-{label}",
            "--shards-at-once",
            str(2 * workers),
            "--runs-per-worker",
            "2",
        ],
        env=worker_env,
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    time.sleep(8)  # workers up and polling
    processes = {
        "prefect server": (state.prefect_pid, False),
        "postgres": (state.postgres_pid, True),
        "workers + shard runs": (proc.pid, True),
        "redis": (state.redis_pid, False),
        "s3 (seaweedfs)": (state.s3_pid, False),
    }
    before = {k: cpu_s(pid, with_exited_children=c) for k, (pid, c) in processes.items()}
    served_before = stats(port)
    me = psutil.Process().cpu_times()
    children_before = me.children_user + me.children_system  # reaped children: earlier jobs, deploys
    started = time.perf_counter()
    job = subprocess.run(
        [
            sys.executable,
            "-m",
            "bookwarm",
            "warm",
            str(csv_path),
            "--max-depth",
            "1",
            "--json",
            "--shard-size",
            str(shard_size),
        ],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    me = psutil.Process().cpu_times()
    job_cpu = me.children_user + me.children_system - children_before
    after = {k: cpu_s(pid, with_exited_children=c) for k, (pid, c) in processes.items()}
    stop(proc.pid, 15.0)
    if job.returncode != 0:
        print(f"[{label}] job failed: {job.stderr[-1500:]}")
        return
    summary = json.loads(job.stdout)
    served = stats(port)
    calls = {p: served[p]["requests"] - served_before[p]["requests"] for p in PROVIDERS}
    limited_429 = {p: served[p]["limit_429"] - served_before[p]["limit_429"] for p in PROVIDERS}
    authors = summary["authors_queued"]
    seconds = summary["duration_s"]
    print(
        f"[{label}] {workers} worker(s): {authors} authors ({summary['authors_warmed']} warmed, "
        f"{summary['authors_failed']} failed) in {seconds:.1f} s = {authors / seconds:.1f} authors/s "
        f"(CLI wall {wall:.1f} s); OpenLibrary calls {calls['openlibrary']}, 429s {limited_429}, "
        f"shard retries {summary['shard_retries']}"
    )
    waited, started = asyncio.run(shard_delays(env["PREFECT_API_URL"], summary["job_id"]))
    if started:
        print(
            f"  {len(started)} shard runs: submission -> taken by a worker median {statistics.median(waited):.1f} s "
            f"(max {max(waited):.1f}); taken -> running median {statistics.median(started):.1f} s (max {max(started):.1f})"
        )
    if limited:
        bound = calls["openlibrary"] / 3.0
        print(
            f"  OpenLibrary lower bound {bound:.1f} s ({calls['openlibrary']} calls at 3/s); ratio {seconds / bound:.2f}; "
            f"calls {calls}"
        )
        used = quota_used(env["BOOKWARM_REDIS_URL"], env["BOOKWARM_REDIS_PREFIX"])
        print(f"  quota units used: {used}")
        target(
            f"[{label}] no 429 across {workers} worker(s)",
            str(sum(limited_429.values())),
            not any(limited_429.values()),
        )
        target(
            f"[{label}] within 1.1x OpenLibrary's bound", f"{seconds / bound:.2f}x", seconds <= 1.1 * bound
        )
    target(f"[{label}] no author failed", str(summary["authors_failed"]), summary["authors_failed"] == 0)
    rows = {k: after[k] - before[k] for k in processes} | {"job (bookwarm warm)": job_cpu}
    for name, seconds_cpu in rows.items():
        print(f"  {name:22s} {seconds_cpu:7.1f} CPU s = {1000 * seconds_cpu / authors:6.1f} ms/author")
    print(
        f"  total                  {sum(rows.values()):7.1f} CPU s over {wall:.1f} s wall on {os.cpu_count()} cores"
    )


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped benchmark still stops its servers
    parser = argparse.ArgumentParser()
    parser.add_argument("--authors", type=int, default=1334)
    parser.add_argument(
        "--limited", type=int, default=1334, help="library authors for the real-limits run (0: skip)"
    )
    parser.add_argument(
        "--limited-batch1",
        type=int,
        default=300,
        help="library authors for a real-limits run with OpenLibrary batches of 1, where the providers bound it (0: skip)",
    )
    parser.add_argument("--workers", default="1,2,3")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        services, fake = LocalServices(home, stop_grace_s=5), FakeProviders(home)
        catalog = home / "catalog.json"
        library = make_catalog(catalog, max(args.authors, args.limited))
        csv_path = home / "library.csv"
        try:
            t0 = time.perf_counter()
            state = services.up(postgres=True)
            print(f"services up (Prefect on PostgreSQL) in {time.perf_counter() - t0:.1f} s")
            fake_state = fake.up(catalog, real_limits=False)
            base = {
                **os.environ,
                **state.env(),
                **provider_env(fake_state.port),
                "BOOKWARM_HOME": str(home),
                "PREFECT_HOME": str(home / "client"),
                "BOOKWARM_WORK_POOL": "bookwarm",
                "PREFECT_WORKER_QUERY_SECONDS": "2",
                "BOOKWARM_SHARD_POLL_S": "1",
            }
            done = subprocess.run(
                [sys.executable, "-m", "bookwarm", "deployments", "deploy"],
                env=base,
                cwd=PROJECT,
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, done.stderr
            runs = [(n, False, args.authors, 25) for n in map(int, filter(None, args.workers.split(",")))]
            if args.limited:
                runs.append((3, True, args.limited, 25))
            if args.limited_batch1:
                runs.append((3, True, args.limited_batch1, 1))
            for workers, limited, count, batch in runs:
                write_library(csv_path, library[:count])
                set_faults(fake_state.port, benchmark_faults(limited))
                label = f"{'limited' if limited else 'open'}-{workers}w" + (
                    f"-batch{batch}" if batch != 25 else ""
                )
                env = {
                    **base,
                    "BOOKWARM_REDIS_PREFIX": f"{label}:",
                    "BOOKWARM_OPENLIBRARY_RPS": "3" if limited else "100000",
                    "BOOKWARM_ISBNDB_RPS": "1" if limited else "100000",
                    "BOOKWARM_GOOGLE_BOOKS_RPS": "10" if limited else "100000",
                    "BOOKWARM_GOOGLE_BOOKS_DAILY_QUOTA": "1000" if limited else "0",
                    "BOOKWARM_ISBNDB_DAILY_QUOTA": "2000" if limited else "0",
                    "BOOKWARM_OPENLIBRARY_BATCH": str(batch),
                }
                shard_size = SHARD_SIZE if batch == 25 else 50  # a few shards at once on every worker
                run_job(label, env, csv_path, workers, state, fake_state.port, limited, shard_size)
        finally:
            fake.down()
            services.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
