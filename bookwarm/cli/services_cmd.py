"""`bookwarm services up|down|status|clean`: the embedded local Redis, S3 and Prefect servers
(`clean` runs the Prefect server's clean-up of old runs and events now)."""

from __future__ import annotations

import argparse
import shlex

from bookwarm.deadline import within
from bookwarm.errors import InputError
from bookwarm.services.local import LocalServices, ServicesState


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("services", help="start/stop local Redis and S3-compatible servers")
    p.add_argument("action", choices=("up", "down", "status", "clean"))
    p.add_argument(
        "--no-prefect", action="store_true", help="up: do not start the local Prefect server (UI + API)"
    )
    p.add_argument(
        "--postgres",
        action="store_true",
        help="up: the Prefect server on a local PostgreSQL (for work pools, many workers and shards)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    services = LocalServices()
    if args.action == "up":
        if args.postgres and args.no_prefect:
            raise InputError("--postgres is the Prefect server's database: it cannot go with --no-prefect")
        state = services.up(with_prefect=not args.no_prefect, postgres=args.postgres)
        print(f"# local services running (data in {services.home}); to use them from a shell:")
        if state.prefect_port:
            database = f"PostgreSQL on port {state.postgres_port}" if state.postgres_pid else "SQLite"
            print(f"# Prefect UI: http://127.0.0.1:{state.prefect_port} (database: {database})")
        _print_env(state.env())
        if state.prefect_port:
            _report_run_ends(services, state.env())
        return 0
    if args.action == "down":
        from bookwarm.providers.fake.runner import FakeProviders
        from bookwarm.services.local_api import LocalApi

        fake_stopped = FakeProviders(services.home).down()
        api_stopped = LocalApi(services.home).down()
        print("stopped" if services.down() or fake_stopped or api_stopped else "not running")
        return 0
    running = services.running()
    if args.action == "clean":
        return _clean(services, running)
    if running is None:
        print("not running")
        return 3
    print(f"# running: redis pid {running.redis_pid}, s3 pid {running.s3_pid} (data in {services.home})")
    _print_env(running.env())
    return 0


def _clean(services: LocalServices, running: ServicesState | None) -> int:
    """Prefect's own clean-up (old runs with their task runs and logs, old events), now, in a
    process with the local server's environment; the database's size before and after."""
    import json
    import subprocess
    import sys

    from bookwarm.errors import ServiceError
    from bookwarm.services.local import prefect_server_env
    from bookwarm.services.postgres import postgres_url

    if running is None or not running.prefect_pid:
        raise ServiceError("no local Prefect server runs: `bookwarm services up` starts one")
    database = postgres_url(running.postgres_port) if running.postgres_pid else None
    done = subprocess.run(
        [sys.executable, "-m", "tasks.prefect_retention"],
        env=prefect_server_env(services.home / "prefect", database),
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ServiceError(f"the Prefect server's clean-up failed: {last[:300]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    mb = 1024 * 1024
    print(
        f"Prefect database: {report['database_bytes_before'] / mb:.1f} MB -> "
        f"{report['database_bytes_after'] / mb:.1f} MB in {report['clean_up_s']} s (runs kept "
        f"{report['run_retention_s'] / 86400:g} days, events {report['event_retention_s'] / 86400:g} days, "
        f"batches of {report['batch_size']})"
    )
    return 0


def _report_run_ends(services: LocalServices, env: dict[str, str]) -> None:
    """The Prefect server is back: give it the final state of jobs that ended while it was down
    (bookwarm.warming.run_ends), so none reads Running in the UI."""
    import asyncio
    import os

    os.environ.setdefault("PREFECT_HOME", str(services.home / "prefect"))
    os.environ.update(env)
    from bookwarm.cache.redis_client import make_redis
    from bookwarm.keys import Keys
    from bookwarm.runtime import load_settings
    from bookwarm.warming.run_ends import RunEnds
    from tasks.prefect_api import report_run_ends

    settings = load_settings(start_services=False)

    async def report() -> list[str]:
        client = make_redis(settings.redis.url, ride_out_s=settings.redis.ride_out_s)
        try:
            ends = RunEnds(client, Keys(settings.redis.key_prefix), settings.redis.job_ttl_s)
            return await within(report_run_ends(ends), 30)
        finally:
            await client.aclose()

    try:
        ended = asyncio.run(report())
    except Exception as exc:
        print(
            f"# earlier jobs' final states not given to Prefect yet ({type(exc).__name__}): the next job does it"
        )
        return
    if ended:
        print(f"# gave Prefect the final state of {len(ended)} job run(s) that ended while it was down")


def _print_env(env: dict[str, str]) -> None:
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
