"""`bookwarm workers start N`: N Prefect process workers on this machine, pulling bookwarm's jobs and
shards from one work pool of the shared Prefect server.

Each is a plain `prefect worker start --pool POOL --type process`, started with the environment
bookwarm's runs need (Redis, the object store, BOOKWARM_WORK_POOL so that the jobs they run submit
their shards to the pool, and heartbeats every 30 s so that a lost worker's runs are marked Crashed).
On many machines run this on each, against one Prefect server, Redis and object store.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time

from bookwarm.errors import InputError

HEARTBEAT_S = "30"  # Prefect's minimum: a dead worker's runs are found within BOOKWARM_SHARD_LOST_AFTER_S


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("workers", help="start Prefect process workers for bookwarm's work pool")
    p.add_argument("action", choices=("start",))
    p.add_argument("count", type=int, nargs="?", default=1, help="workers to start on this machine (1-32)")
    p.add_argument("--pool", default=None, help="work pool (default: BOOKWARM_WORK_POOL, else 'bookwarm')")
    p.add_argument(
        "--shards-at-once",
        type=int,
        default=4,
        help="shard runs at once across all workers (pool queue limit)",
    )
    p.add_argument("--jobs-at-once", type=int, default=2, help="job runs at once across all workers")
    p.add_argument(
        "--name",
        default=None,
        help="worker name prefix (default: bookwarm-HOSTNAME); workers are PREFIX-0, -1, ...",
    )
    p.add_argument("--runs-per-worker", type=int, default=4, help="runs one worker starts at once (--limit)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.count <= 32:
        raise InputError(f"workers: count must be 1 to 32, got {args.count}")
    for name in ("shards_at_once", "jobs_at_once", "runs_per_worker"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InputError(f"workers: --{name.replace('_', '-')} must be at least 1")
    from bookwarm.cli.runtime_env import prepare_flow_runtime

    settings = prepare_flow_runtime()
    pool = args.pool or settings.orchestration.work_pool or "bookwarm"
    import asyncio

    from deployments.pool import ensure_pool
    from tasks.prefect_api import ensure_shard_crash_automation

    asyncio.run(ensure_pool(pool, shards_at_once=args.shards_at_once, jobs_at_once=args.jobs_at_once))
    asyncio.run(ensure_shard_crash_automation(settings.orchestration.shard_lost_after_s))
    from bookwarm.services.local import LocalServices
    from bookwarm.services.process import spawn, stop

    services = LocalServices()
    env = worker_env(pool)
    local = services.running()
    if local and "local services" in (settings.origins.get("redis.url"), settings.origins.get("s3.endpoint")):
        env.update({k: v for k, v in local.env().items() if k not in os.environ})
    home = services.home
    procs = []
    for index in range(args.count):
        name = f"{args.name or 'bookwarm-' + socket.gethostname()}-{index}"
        log = home / "logs" / f"worker-{index}.log"
        argv = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]
        argv += ["--name", name, "--limit", str(args.runs_per_worker)]
        procs.append((name, log, spawn(argv, log, env=env)))
        print(f"worker {name} (pid {procs[-1][2].pid}), log {log}", file=sys.stderr)
    print(
        f"{args.count} worker(s) on pool {pool!r} against {os.environ.get('PREFECT_API_URL')}; Ctrl-C stops them",
        file=sys.stderr,
    )
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        while not stopping:
            for name, log, proc in procs:
                if proc.poll() is not None:
                    print(
                        f"bookwarm: error: worker {name} exited ({proc.returncode}); see {log}",
                        file=sys.stderr,
                    )
                    stopping.append(True)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for _, _, proc in procs:
        stop(proc.pid, 10.0)
    return 0 if all(p.returncode in (0, None, -signal.SIGTERM) for _, _, p in procs) else 1


def worker_env(pool: str) -> dict[str, str]:
    """What every run a worker starts inherits: this process's environment (Redis, object store,
    Prefect API), the pool for the jobs' shards, heartbeats for crash detection, Prefect's quiet."""
    env = dict(os.environ)
    env["BOOKWARM_WORK_POOL"] = pool
    env.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", HEARTBEAT_S)
    env.setdefault("PREFECT_WORKER_QUERY_SECONDS", "5")  # a shard waits up to this long for a worker
    return env
