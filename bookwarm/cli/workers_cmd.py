"""`bookwarm workers start N`: N Prefect process workers on this machine, pulling bookwarm's jobs and
shards from one work pool of the shared Prefect server.

Each is a plain `prefect worker start --pool POOL --type process`, started with the environment
bookwarm's runs need (Redis, the object store, BOOKWARM_WORK_POOL so that the jobs they run submit
their shards to the pool, and heartbeats every 30 s so that a lost worker's runs are marked Crashed).
On many machines run this on each, against one Prefect server, Redis and object store.

One worker that dies does not stop the others: it is started again under the same name (after a
pause that doubles while it keeps dying at once), and says so. Names are unique per host and
process (``bookwarm-HOST-PID-INDEX``), so two of these on one machine never share a name or a log.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bookwarm.errors import InputError

HEARTBEAT_S = "30"  # Prefect's minimum: a dead worker's runs are found within BOOKWARM_SHARD_LOST_AFTER_S
WORKER_HEARTBEAT_S = "10"  # a worker's own beat: a pool with no live worker is told within ~30 s
RESTART_PAUSE_S = (1.0, 60.0)  # first pause before restarting a dead worker, and the most it doubles to
STEADY_S = 60.0  # a worker that ran this long before dying is restarted after the first pause again


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
        help="worker name prefix (default: bookwarm-HOSTNAME-PID); workers are PREFIX-0, -1, ...",
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
    from tasks.prefect_api import ensure_crash_automation

    asyncio.run(ensure_pool(pool, shards_at_once=args.shards_at_once, jobs_at_once=args.jobs_at_once))
    asyncio.run(ensure_crash_automation(settings.orchestration.shard_lost_after_s))
    from bookwarm.services.local import LocalServices

    services = LocalServices()
    env = worker_env(pool)
    local = services.running()
    if local and "local services" in (settings.origins.get("redis.url"), settings.origins.get("s3.endpoint")):
        env.update({k: v for k, v in local.env().items() if k not in os.environ})
    prefix = args.name or f"bookwarm-{socket.gethostname()}-{os.getpid()}"
    workers = [
        Worker(f"{prefix}-{index}", pool, args.runs_per_worker, services.home / "logs", env)
        for index in range(args.count)
    ]
    for worker in workers:
        worker.start()
    print(
        f"{args.count} worker(s) on pool {pool!r} against {os.environ.get('PREFECT_API_URL')}; Ctrl-C stops them",
        file=sys.stderr,
    )
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        while not stopping:
            for worker in workers:
                worker.look_after()
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for worker in workers:
        worker.stop()
    return 0


class Worker:
    """One `prefect worker start` process, started again when it dies."""

    def __init__(self, name: str, pool: str, limit: int, logs: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = logs / f"worker-{name}.log"
        self.argv = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]
        self.argv += ["--name", name, "--limit", str(limit)]
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.pause_s = RESTART_PAUSE_S[0]
        self.restart_at: float | None = None
        self.restarts = 0

    def start(self) -> None:
        from bookwarm.services.process import spawn

        self.proc = spawn(self.argv, self.log, env=self.env)
        self.started = time.monotonic()
        print(f"worker {self.name} (pid {self.proc.pid}), log {self.log}", file=sys.stderr, flush=True)

    def look_after(self) -> None:
        """Restart the worker once its pause is over, if it died; the others never wait on it."""
        now = time.monotonic()
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restart_at = None
                self.restarts += 1
                self.start()
            return
        if self.proc is None or self.proc.poll() is None:
            return
        if now - self.started >= STEADY_S:
            self.pause_s = RESTART_PAUSE_S[0]
        print(
            f"bookwarm: worker {self.name} exited ({self.proc.returncode}; see {self.log}): starting it again "
            f"in {self.pause_s:g} s, the others go on",
            file=sys.stderr,
            flush=True,
        )
        self.restart_at = now + self.pause_s
        self.pause_s = min(RESTART_PAUSE_S[1], self.pause_s * 2)

    def stop(self) -> None:
        from bookwarm.services.process import stop

        if self.proc is not None and self.proc.poll() is None:
            stop(self.proc.pid, 10.0)


def worker_env(pool: str) -> dict[str, str]:
    """What every run a worker starts inherits: this process's environment (Redis, object store,
    Prefect API), this interpreter first on PATH, the pool for the jobs' shards, heartbeats for crash
    detection, Prefect's quiet."""
    env = dict(os.environ)
    env["BOOKWARM_WORK_POOL"] = pool
    # the deployments' command is `python -m prefect.engine`: this interpreter, venv or not
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]).rstrip(os.pathsep)
    env.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", HEARTBEAT_S)
    env.setdefault("PREFECT_WORKER_HEARTBEAT_SECONDS", WORKER_HEARTBEAT_S)
    env.setdefault("PREFECT_WORKER_QUERY_SECONDS", "5")  # a shard waits up to this long for a worker
    return env
