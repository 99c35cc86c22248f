"""Benchmark: `bookwarm api` under a real HTTP load generator (`make bench-api`).

10,000 authors written through bookwarm's write path (bench_read's bibliographies: 12 works each),
on local Redis and S3; `bookwarm api --workers N` on loopback; `wrk` (Debian's package, installed
here when missing) at 64 connections over random authors. Then:
- hot author lookups: requests/s, p50, p99 (targets: >= 5,000/s, p50 <= 2 ms, p99 <= 20 ms);
- cold lookups (each the first read after its Redis entry was evicted, promoted): p99 <= 50 ms;
- misses answered from the cache's negative entries (404): p99 <= 10 ms;
- live misses at the real limits (fake OpenLibrary at 3/s): 20 concurrent readers of one uncached
  author and 10 of distinct ones: OpenLibrary calls, 202s, answers within their deadline;
- the API processes' CPU per request.
Each target is printed with PASS or FAIL. Figures, never assertions.
Usage: python -m tests.bench.bench_api [--authors 10000] [--workers 2] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from bookwarm.cache.hot import HotCache
from bookwarm.cache.objectstore import ObjectStore
from bookwarm.cache.redis_client import make_redis
from bookwarm.cache.tiered import TieredCache
from bookwarm.keys import Keys
from bookwarm.providers.fake.runner import FakeProviders, provider_env, stats
from bookwarm.services.local import LocalServices
from bookwarm.services.process import free_port, stop
from bookwarm.settings import resolve
from tests.bench import exit_cleanly_on_sigterm, reference_ms
from tests.bench.bench_read import bibliography
from tests.conftest import PROJECT

WRK_SCRIPT = """
math.randomseed(os.time())
request = function()
  return wrk.format("GET", string.format("/v1/authors/Reader%%20Author%05d", math.random(0, LAST)))
end
"""


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("# wrk not found: installing Debian's package (apt-get install wrk)", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or "wrk"


def wrk(url: str, script: Path, seconds: int, connections: int) -> dict[str, float]:
    done = subprocess.run(
        [ensure_wrk(), "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"wrk failed: {(done.stderr or done.stdout).strip()[:300]}")
    out = done.stdout

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not match:
            return float("nan")
        value, unit = float(match[1]), match[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    total = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": ms("50"),
        "p99": ms("99"),
        "requests": total,
        "errors": int(non2xx[1]) if non2xx else 0,
    }


def api_processes(root: int) -> list[psutil.Process]:
    parent = psutil.Process(root)
    return [parent, *parent.children(recursive=True)]


def cpu_seconds(root: int) -> float:
    total = 0.0
    for proc in api_processes(root):
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


async def fill(settings, authors: int) -> None:
    client = make_redis(settings.redis.url, max_connections=64)
    cold = ObjectStore(settings.s3)
    cold.ensure_bucket()
    keys = Keys(settings.redis.key_prefix)
    cache = TieredCache(HotCache(client, keys), cold, hot_ttl_s=3600 * 24)
    gate = asyncio.Semaphore(32)

    async def write(i: int) -> None:
        async with gate:
            await cache.write(bibliography(i))

    await asyncio.gather(*(write(i) for i in range(authors)))
    negative = {
        "status": "unknown",
        "works": [],
        "works_count": 0,
        "complete": False,
        "sources": {},
        "calls": {},
    }
    pipe = client.pipeline(transaction=False)
    for i in range(1000):  # what a warm writes for a name OpenLibrary does not know
        key = f"nobody-author{i:04d}"
        entry = {
            **negative,
            "author": {"name": f"Nobody Author{i:04d}", "key": key},
            "fetched_at": "2026-12-04T00:00:00+00:00",
        }
        pipe.set(keys.author(key), __import__("json").dumps(entry), ex=3600)
    await pipe.execute()
    await client.aclose()
    await cold.aclose()


async def timed_gets(url: str, paths: list[str], concurrency: int) -> tuple[list[float], list[int]]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    codes: list[int] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one(path: str) -> None:
            async with gate:
                t = time.perf_counter()
                answer = await client.get(path)
                latencies.append(time.perf_counter() - t)
                codes.append(answer.status_code)

        await asyncio.gather(*(one(p) for p in paths))
    return latencies, codes


def p(latencies: list[float], q: float) -> float:
    ms = sorted(x * 1000 for x in latencies)
    return ms[min(len(ms) - 1, int(len(ms) * q))]


async def evict(settings, indexes: list[int]) -> None:
    client = make_redis(settings.redis.url)
    keys = Keys(settings.redis.key_prefix)
    await client.delete(*(keys.author(f"reader-author{i:05d}") for i in indexes))
    await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--authors", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    print(f"reference workload {reference_ms():.0f} ms (machine speed); {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        services = LocalServices(home / "services", stop_grace_s=2)
        fake = FakeProviders(home / "fake")
        try:
            state = services.up()
            fake_state = fake.up(PROJECT / "examples" / "catalog.json", real_limits=True)
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("BOOKWARM_", "PREFECT_API_URL"))},
                **state.env(),
                **provider_env(fake_state.port),
                "BOOKWARM_HOME": str(home),
                "BOOKWARM_REDIS_PREFIX": "bench-api:",
                "BOOKWARM_API_CLIENT_RPS": "0",
            }
            settings = resolve(env)
            started = time.perf_counter()
            asyncio.run(fill(settings, args.authors))
            print(f"wrote {args.authors:,} authors to both tiers in {time.perf_counter() - started:.1f} s")
            port = free_port()
            api = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bookwarm",
                    "api",
                    "--port",
                    str(port),
                    "--workers",
                    str(args.workers),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(home / "api.log").open("wb"),
                start_new_session=True,
            )
            url = f"http://127.0.0.1:{port}"
            try:
                for _ in range(400):
                    try:
                        if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.05)
                time.sleep(1.0)  # every worker process up, not only the first
                report(url, api.pid, settings, args, home, fake_state.port)
            finally:
                stop(api.pid, 5.0)
        finally:
            fake.down()
            services.down()
    return 0


def report(url: str, api_pid: int, settings, args, home: Path, fake_port: int) -> None:
    script = home / "authors.lua"
    script.write_text(WRK_SCRIPT.replace("LAST", str(args.authors - 1)))
    wrk(url, script, 3, 64)  # warm-up: connections, caches
    cpu_before = cpu_seconds(api_pid)
    hot = wrk(url, script, args.seconds, 64)
    cpu = cpu_seconds(api_pid) - cpu_before
    per_request_ms = cpu / max(1, hot["requests"]) * 1000
    print(f"\nhot author lookups, 64 connections, {args.workers} API processes, {args.seconds} s:")
    print(
        f"  {hot['rps']:,.0f} requests/s ({hot['rps'] / args.workers:,.0f} per process), errors {hot['errors']}   "
        f"target >= 5,000: {verdict(hot['rps'] >= 5000)}"
    )
    print(f"  p50 {hot['p50']:.2f} ms   target <= 2 ms: {verdict(hot['p50'] <= 2)}")
    print(f"  p99 {hot['p99']:.2f} ms   target <= 20 ms: {verdict(hot['p99'] <= 20)}")
    print(f"  API CPU {per_request_ms:.3f} ms a request")

    quiet = wrk(url, script, 5, 4)
    print(
        f"  at 4 connections (latency, not queueing: at 64, Little's law puts the mean at 64 / rate): "
        f"{quiet['rps']:,.0f} requests/s, p50 {quiet['p50']:.2f} ms, p99 {quiet['p99']:.2f} ms   "
        f"p50 <= 2 ms: {verdict(quiet['p50'] <= 2)}, p99 <= 20 ms: {verdict(quiet['p99'] <= 20)}"
    )

    cold_ids = list(range(0, args.authors, max(1, args.authors // 500)))[:500]
    asyncio.run(evict(settings, cold_ids))
    lat, codes = asyncio.run(timed_gets(url, [f"/v1/authors/Reader%20Author{i:05d}" for i in cold_ids], 4))
    print(
        f"\ncold lookups (promoted), {len(lat)} at 4 at once: p50 {p(lat, 0.5):.2f} ms, p99 {p(lat, 0.99):.2f} ms, "
        f"{codes.count(200)} x 200   target p99 <= 50 ms: {verdict(p(lat, 0.99) <= 50)}"
    )

    negative = home / "negative.lua"
    negative.write_text(
        WRK_SCRIPT.replace("Reader%%20Author%05d", "Nobody%%20Author%04d").replace("LAST", "999")
    )
    missed = wrk(url, negative, 5, 4)
    print(
        f"negative misses (404 from the cache), wrk at 4 connections: {missed['rps']:,.0f}/s, "
        f"p50 {missed['p50']:.2f} ms, p99 {missed['p99']:.2f} ms, non-2xx {missed['errors']}   "
        f"target p99 <= 10 ms: {verdict(missed['p99'] <= 10)}"
    )

    before = stats(fake_port)["openlibrary"]
    t = time.perf_counter()
    lat, codes = asyncio.run(timed_gets(url, ["/v1/authors/Neil%20Gaiman?wait=10"] * 20, 20))
    took = time.perf_counter() - t
    after = stats(fake_port)["openlibrary"]
    asked = after["asked"].get("Neil Gaiman", 0) - before["asked"].get("Neil Gaiman", 0)
    print(
        f"\nlive misses at the real limits (OpenLibrary 3/s; readers' share {settings.api.live_share}, ~1 call/s):"
    )
    print(
        f"  20 readers of one uncached author at once: {codes.count(200)} x 200 in {took:.1f} s, "
        f"{after['requests'] - before['requests']} OpenLibrary calls   "
        f"one fetch for all: {verdict(asked <= 1 and codes.count(200) == 20)}"
    )
    names = (
        "Terry Pratchett",
        "Stephen Baxter",
        "Alastair Reynolds",
        "Ursula K. Le Guin",
        "Stephen King",
        "Peter Straub",
        "Nora Roberts",
        "Haruki Murakami",
        "Jack Thorne",
        "John Tiffany",
    )
    lat, codes = asyncio.run(
        timed_gets(url, [f"/v1/authors/{n.replace(' ', '%20')}?wait=2" for n in names], 10)
    )
    time.sleep(12)  # the fetches a 202 left going: the bench waits for them, to count their calls
    after2 = stats(fake_port)["openlibrary"]
    print(
        f"  10 distinct uncached authors at once, wait 2 s: {codes.count(200)} x 200, {codes.count(202)} x 202, "
        f"{codes.count(404)} x 404; slowest answer {max(lat):.2f} s   within the deadline: {verdict(max(lat) <= 2.5)}"
    )
    print(
        f"  OpenLibrary calls {after2['requests'] - before['requests']} in all, "
        f"429s {after2['limit_429'] - before['limit_429']}   "
        f"never over its rate: {verdict(after2['limit_429'] == before['limit_429'])}"
    )


if __name__ == "__main__":
    exit_cleanly_on_sigterm()
    raise SystemExit(main())
