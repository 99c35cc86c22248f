"""`make chaos`: the fault scenarios of a real run, each recovered, in one table.

Everything is real and local: Redis, the S3 store and a Prefect server (`bookwarm services`, in a
temp home), the fake providers over a generated catalog, and `bookwarm` CLI processes. Each
scenario warms the same generated library (100 authors with an ISBN each, 50 co-authors at depth
1) under its own Redis prefix and bucket, injects its fault midway, then recovers as an operator
would: `bookwarm resume JOB` for a job that did not complete, `bookwarm redrive JOB` for dead
letters. Then it counts, from Redis and the object store:

- authors: every author the scenario's jobs queued;
- cached w/ works: authors whose bibliography is in both tiers with at least one work;
- dead letters: left after recovery (with reasons, re-drivable);
- lost: queued authors neither processed nor a dead letter (must be 0);
- OL calls / unique: OpenLibrary requests served against unique authors (batches of one here, so
  a library author costs 2: identity by ISBN, works by key; a co-author 1);
- lines: what the faulted command printed on stderr, progress lines aside; exit: its exit code,
  then the recovery's.

Then every Redis value and object is searched for the S3 secret key and planted file content.
Usage: python -m tests.chaos.run [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from bookwarm.keys import Keys
from bookwarm.providers.fake.runner import FakeProviders, provider_env, set_faults, stats
from bookwarm.providers.fake.server import PROVIDERS, Faults
from bookwarm.services.local import LocalServices, ServicesState
from tests.bench.bench_warm import make_catalog

AUTHORS = 100
SECRET_FILE_TEXT = "root:x:0:0:chaos-planted-secret"


@dataclass
class Row:
    scenario: str
    authors: int = 0
    cached: int = 0
    dead: int = 0
    lost: int = 0
    calls: str = ""
    lines: int = 0
    exit: str = ""
    note: str = ""


@dataclass
class Chaos:
    home: Path
    services: LocalServices
    state: ServicesState
    fake_port: int
    library: Path
    rows: list[Row] = field(default_factory=list)

    def env(self, name: str) -> dict[str, str]:
        return {
            **os.environ,
            **self.state.env(),
            **provider_env(self.fake_port),
            "PREFECT_API_URL": f"http://127.0.0.1:{self.state.prefect_port}/api",
            "PREFECT_HOME": str(self.home / "client"),
            "BOOKWARM_HOME": str(self.home / "cli"),
            "BOOKWARM_REDIS_PREFIX": f"chaos-{name}:",
            "BOOKWARM_S3_BUCKET": f"chaos-{name}",
            "BOOKWARM_OPENLIBRARY_BATCH": "1",  # one call per author: room to strike midway
            "BOOKWARM_OPENLIBRARY_RPS": "20",
            "BOOKWARM_GOOGLE_BOOKS_RPS": "50",
            "BOOKWARM_ISBNDB_RPS": "50",
            "BOOKWARM_JOB_HEARTBEAT_S": "1",
            "BOOKWARM_PREFECT_GRACE_S": "5",
            "BOOKWARM_CLAIM_TTL_S": "5",
            "BOOKWARM_AUTHOR_RETRY_DELAY_S": "0.5",
        }

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.state.env()["BOOKWARM_REDIS_URL"])

    def faults(self, **values: float) -> None:
        set_faults(self.fake_port, {p: Faults(latency_ms=20, **values) for p in PROVIDERS})


def cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """A `bookwarm` process whose output goes to files: a pipe nobody reads while the scenario
    waits would fill and block it (its progress lines), which is not the fault under test."""
    out = tempfile.NamedTemporaryFile("w+", prefix="chaos-out-", delete=False)  # noqa: SIM115
    err = tempfile.NamedTemporaryFile("w+", prefix="chaos-err-", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "bookwarm", *args],
        env=env,
        stdout=out,
        stderr=err,
        text=True,
        start_new_session=True,
    )
    proc.outputs = (Path(out.name), Path(err.name))  # type: ignore[attr-defined]
    out.close()
    err.close()
    return proc


def finish(proc: subprocess.Popen[str], timeout_s: float = 600) -> tuple[int, int, str]:
    """(exit code, lines printed on stderr other than progress lines, stderr)."""
    proc.wait(timeout=timeout_s)
    out_path, err_path = proc.outputs  # type: ignore[attr-defined]
    err = err_path.read_text()
    out_path.unlink()
    err_path.unlink()
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("[")]
    return proc.returncode, len(lines), err


def processed_count(chaos: Chaos, name: str) -> int:
    client = chaos.redis()
    try:
        return sum(1 for _ in client.scan_iter(match=Keys(f"chaos-{name}:").processed("*"), count=1000))
    except redis.RedisError:
        return 0
    finally:
        client.close()


def wait_processed(chaos: Chaos, name: str, count: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 300
    while processed_count(chaos, name) < count:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name}: the run ended before the fault could strike")
        time.sleep(0.05)


def job_ids(chaos: Chaos, name: str) -> list[str]:
    keys = Keys(f"chaos-{name}:")
    client = chaos.redis()
    try:
        return sorted(
            k.decode().removeprefix(keys.job(""))
            for k in client.scan_iter(match=keys.job("*"))
            if ":" not in k.decode().removeprefix(keys.job(""))
        )
    finally:
        client.close()


def job_status(chaos: Chaos, name: str, job_id: str) -> tuple[str, int]:
    keys = Keys(f"chaos-{name}:")
    client = chaos.redis()
    try:
        record = {k.decode(): v.decode() for k, v in client.hgetall(keys.job(job_id)).items()}
        dead = client.hlen(keys.dead_letters(job_id))
    finally:
        client.close()
    status = record.get("status", "missing")
    beat = float(record.get("heartbeat_ts") or 0)
    if status == "running" and time.time() - beat > 3 * 1.0:
        status = "interrupted"
    return status, dead


def recover(chaos: Chaos, name: str, env: dict[str, str]) -> list[int]:
    """As an operator would: resume what did not complete, then redrive dead letters."""
    codes = []
    for job_id in job_ids(chaos, name):
        deadline = time.monotonic() + 30
        status, dead = job_status(chaos, name, job_id)
        while status == "running" and time.monotonic() < deadline:  # a heartbeat still fresh
            time.sleep(0.2)
            status, dead = job_status(chaos, name, job_id)
        if status != "completed":
            codes.append(finish(cli(env, "resume", job_id, "--json"))[0])
            status, dead = job_status(chaos, name, job_id)
        if dead:
            codes.append(finish(cli(env, "redrive", job_id, "--json"))[0])
    return codes


def ol_calls(chaos: Chaos) -> int:
    return int(stats(chaos.fake_port)["openlibrary"]["requests"])


def measure(chaos: Chaos, name: str, row: Row, calls_before: int = 0) -> Row:
    """Counts from Redis and the object store; ``calls_before``: OpenLibrary calls of the faulted run
    (the fake's counters restart when its faults are cleared for the recovery)."""
    from minio import Minio

    keys = Keys(f"chaos-{name}:")
    client = chaos.redis()
    state = chaos.state
    store = Minio(f"127.0.0.1:{state.s3_port}", state.access_key, state.secret_key, secure=False)
    try:
        queued: set[str] = set()
        dead: set[str] = set()
        for job_id in job_ids(chaos, name):
            queued |= {k.decode() for k in client.hkeys(keys.job_queued(job_id))}
            dead |= {k.decode() for k in client.hkeys(keys.dead_letters(job_id))}
        done, cached = set(), 0
        for key in queued:
            raw = client.get(keys.processed(key))
            if raw is None:
                continue
            done.add(key)
            record = json.loads(raw)
            if int(record.get("works_count", 0)) > 0 and client.exists(keys.author(key)):
                try:
                    store.stat_object(f"chaos-{name}", Keys.author_object(key))
                    cached += 1
                except Exception:
                    pass
        row.authors, row.cached, row.dead = len(queued), cached, len(dead - done)
        row.lost = len(queued - done - dead)
        row.calls = f"{calls_before + ol_calls(chaos)} / {len(queued)}"
    finally:
        client.close()
    return row


def run_scenario(
    chaos: Chaos, name: str, strike: Callable[[Chaos, subprocess.Popen[str]], str] | None, **faults: float
) -> Row:
    """One warm of the library with ``strike`` run once 30 authors are done; then recover, measure."""
    env = chaos.env(name)
    chaos.faults(**faults)
    proc = cli(env, "warm", str(chaos.library), "--max-depth", "1", "--json")
    note = ""
    if strike is not None:
        wait_processed(chaos, name, 30, proc)
        note = strike(chaos, proc)
    code, lines, err = finish(proc)
    said = [line for line in err.splitlines() if line.startswith("bookwarm:")]
    if said:  # the one line the operator got
        note = f"{note}; said: {said[0][:110]}"
    calls = ol_calls(chaos)
    chaos.faults()  # the fault is over: recovery runs on healthy providers (counters start again)
    recovered = recover(chaos, name, env)
    row = measure(chaos, name, Row(name, lines=lines, note=note), calls)
    row.exit = " → ".join(str(c) for c in [code, *recovered])
    return row


def _kill(pid: int) -> None:
    """SIGKILL the server's process group, as a crash would, and wait until it is gone."""
    from bookwarm.services.process import pid_alive

    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def kill_and_revive(pid_of: Callable[[ServicesState], int], down_s: float) -> Callable:
    """The server dies under the run and comes back ``down_s`` later (`bookwarm services up`)."""

    def strike(chaos: Chaos, proc: subprocess.Popen[str]) -> str:
        _kill(pid_of(chaos.state))
        time.sleep(down_s)
        chaos.state = chaos.services.up(with_prefect=True)
        return f"down {down_s:g} s, then `services up`"

    return strike


def sigkill_cli(chaos: Chaos, proc: subprocess.Popen[str]) -> str:
    os.killpg(proc.pid, signal.SIGKILL)
    return "CLI SIGKILLed"


def cancel(chaos: Chaos, proc: subprocess.Popen[str]) -> str:
    name = "cancel"
    (job_id,) = job_ids(chaos, name)
    httpx.post(
        f"http://127.0.0.1:{chaos.state.prefect_port}/api/flow_runs/{job_id}/set_state",
        json={"state": {"type": "CANCELLING"}, "force": True},
        timeout=10,
    ).raise_for_status()
    return "cancelled through the REST API"


def kill_prefect(chaos: Chaos, proc: subprocess.Popen[str]) -> str:
    started = time.monotonic()
    _kill(chaos.state.prefect_pid)
    while proc.poll() is None and time.monotonic() - started < 300:
        time.sleep(0.05)
    took = time.monotonic() - started
    chaos.state = chaos.services.up(with_prefect=True)
    return f"CLI exited {took:.1f} s after the kill (grace 5 s)"


def concurrent(chaos: Chaos) -> Row:
    name = "concurrent"
    env = chaos.env(name)
    chaos.faults()
    procs = [cli(env, "warm", str(chaos.library), "--max-depth", "1", "--json") for _ in range(2)]
    results = [finish(p) for p in procs]
    calls = ol_calls(chaos)
    chaos.faults()
    recovered = recover(chaos, name, env)
    row = measure(chaos, name, Row(name, lines=sum(r[1] for r in results), note="two runs at once"), calls)
    row.exit = " → ".join(str(c) for c in [*(r[0] for r in results), *recovered])
    return row


def hostile(chaos: Chaos) -> Row:
    """Sources a UI or REST caller might send a deployment: each must be refused, quoting nothing."""
    env = chaos.env("hostile")
    planted = chaos.home / "planted.csv"
    planted.write_text(f"{SECRET_FILE_TEXT}\n")
    outside = chaos.home / "outside"
    outside.symlink_to(planted)
    sources = [
        "/etc/passwd",
        str(planted),
        str(outside),
        f"{chaos.home}/../{chaos.home.name}/planted.csv",
        f"s3://{env['BOOKWARM_S3_BUCKET']}/other/lib.csv",
        "s3://another-bucket/uploads/lib.csv",
        f"s3://{env['BOOKWARM_S3_BUCKET']}/uploads/../secrets.csv",
        "not base64 at all!",
    ]
    script = (
        "import asyncio, json, sys\n"
        "from flows.warm_library import warm_library\n"
        "out = []\n"
        "for s in json.loads(sys.argv[1]):\n"
        "    st = asyncio.run(warm_library(s, max_depth=1, return_state=True))\n"
        "    out.append([st.is_failed(), st.message or ''])\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(sources)],
        env={**env, "PREFECT_LOGGING_LEVEL": "ERROR"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    results = json.loads(done.stdout.strip().splitlines()[-1])
    refused = sum(1 for failed, _ in results if failed)
    quoted = sum(1 for _, message in results if "chaos-planted" in message or "root:x" in message)
    row = measure(chaos, "hostile", Row("hostile sources", note=f"refused {refused}/{len(sources)}"))
    row.lines = len(results)
    row.exit = f"{quoted} quoted"
    return row


def leaks(chaos: Chaos) -> list[str]:
    """Where the S3 secret or the planted file's text appears: Redis values, objects, Prefect logs."""
    from minio import Minio

    needles = [chaos.state.secret_key.encode(), b"chaos-planted-secret", b"root:x:0:0"]
    found = []
    client = chaos.redis()
    try:
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            if kind == b"string":
                values = [client.get(key) or b""]
            elif kind == b"hash":
                values = list(client.hgetall(key).values())
            elif kind == b"set":
                values = list(client.smembers(key))
            else:
                values = []
            if any(n in v for v in values for n in needles):
                found.append(f"redis {key.decode()}")
    finally:
        client.close()
    state = chaos.state
    store = Minio(f"127.0.0.1:{state.s3_port}", state.access_key, state.secret_key, secure=False)
    for bucket in store.list_buckets():
        for obj in store.list_objects(bucket.name, recursive=True):
            data = store.get_object(bucket.name, obj.object_name).read()
            if any(n in data for n in needles):
                found.append(f"object {bucket.name}/{obj.object_name}")
    api = f"http://127.0.0.1:{state.prefect_port}/api"
    logs = httpx.post(f"{api}/logs/filter", json={"limit": 200}, timeout=30).text.encode()
    runs = httpx.post(f"{api}/flow_runs/filter", json={"limit": 200}, timeout=30).text.encode()
    found += [
        f"prefect {what}"
        for what, text in (("logs", logs), ("flow runs", runs))
        if any(n in text for n in needles)
    ]
    return found


SCENARIOS: dict[str, Callable[[Chaos], Row]] = {
    "baseline": lambda c: run_scenario(c, "baseline", None),
    "provider-faults": lambda c: run_scenario(c, "provider-faults", None, error_rate=0.2, rate_429=0.2),
    "redis-restart": lambda c: run_scenario(c, "redis-restart", kill_and_revive(lambda s: s.redis_pid, 3)),
    "s3-restart": lambda c: run_scenario(c, "s3-restart", kill_and_revive(lambda s: s.s3_pid, 3)),
    "prefect-killed": lambda c: run_scenario(c, "prefect-killed", kill_prefect),
    "cli-sigkill": lambda c: run_scenario(c, "cli-sigkill", sigkill_cli),
    "cancel": lambda c: run_scenario(c, "cancel", cancel),
    "concurrent": concurrent,
    "hostile": hostile,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", nargs="*", choices=sorted(SCENARIOS), help="scenarios to run (default: all)"
    )
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    with tempfile.TemporaryDirectory(prefix="bookwarm-chaos-") as tmp:
        home = Path(tmp)
        services = LocalServices(home / "services", stop_grace_s=2)
        fake = FakeProviders(home / "fake")
        catalog = home / "catalog.json"
        rows = make_catalog(catalog, AUTHORS)
        library = home / "library.csv"
        library.write_text(
            "Title,Author,ISBN\n" + "".join(f"Book {i},{n},{isbn}\n" for i, (n, isbn) in enumerate(rows))
        )
        try:
            console.print("starting Redis, S3, a Prefect server and the fake providers ...")
            state = services.up(with_prefect=True)
            chaos = Chaos(home, services, state, fake.up(catalog, real_limits=False).port, library)
            for name in args.only or SCENARIOS:
                started = time.monotonic()
                console.print(f"scenario {name} ...")
                row = SCENARIOS[name](chaos)
                row.note = f"{row.note} ({time.monotonic() - started:.0f} s)".strip()
                chaos.rows.append(row)
            leaked = leaks(chaos)
        finally:
            fake.down()
            services.down()
    table = Table(title=f"bookwarm chaos: {AUTHORS} library authors, depth 1")
    for column in (
        "scenario",
        "authors",
        "cached w/ works",
        "dead letters",
        "lost",
        "OL calls / unique",
        "lines",
        "exit",
        "note",
    ):
        table.add_column(column)
    for r in chaos.rows:
        table.add_row(
            r.scenario,
            str(r.authors),
            str(r.cached),
            str(r.dead),
            str(r.lost),
            r.calls,
            str(r.lines),
            r.exit,
            r.note,
        )
    console.print(table)
    console.print(f"leaked: {len(leaked)}" + (f" ({', '.join(leaked)})" if leaked else ""))
    lost = sum(r.lost for r in chaos.rows)
    return 1 if lost or leaked else 0


if __name__ == "__main__":
    raise SystemExit(main())
