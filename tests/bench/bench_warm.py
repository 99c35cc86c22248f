"""Benchmark: warm generated authors at depth 1 through the real flows, against the fake providers.

Phase 1, limits and latency off: 1,000 authors; wall time, authors/s, OpenLibrary calls/author,
Prefect overhead per author, peak memory of this process (the flow runs here).
Phase 2, real limits (OpenLibrary 3/s, ISBNdb 1/s, Google 10/s) and 150 ms latency: N authors
(default 200; ISBNdb's 1 call/s makes 1,000 authors take 17 minutes); wall time vs lower bound.

Backends: the embedded default (local `prefect server start`, SQLite) and, with --pg URL, a Prefect
server on PostgreSQL (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/bookwarm_bench).
Usage: python -m tests.bench.bench_warm [--authors 1000] [--limited 200] [--pg URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import time
from pathlib import Path

from bookwarm.providers.fake.catalog import isbn13_for
from bookwarm.providers.fake.runner import FakeProviders, provider_env, set_faults, stats
from bookwarm.providers.fake.server import PROVIDERS, REAL_LIMITS, Faults
from bookwarm.services.local import LocalServices, start_prefect_server
from bookwarm.services.process import stop
from tests.bench import cpu, reference_ms

LATENCY_MS = 150
PROCESSES: dict[str, int | str] = {}  # label -> pid or command name, for the CPU report
CONCURRENCY = 32


def make_catalog(path: Path, count: int) -> list[str]:
    """count authors, 4 works each; every 5th work is co-written with another author of the set."""
    names = [f"Benchmark Author{i:04d}" for i in range(count)]
    authors = []
    for i, name in enumerate(names):
        works = []
        for n in range(4):
            work = {"title": f"{name} Title {n}", "year": 1990 + n, "isbn": [isbn13_for(f"b{i}/{n}")]}
            if n == 0 and count > 1:
                work["coauthors"] = [f"OL{(i + 1) % count + 1}A"]
            works.append(work)
        authors.append({"key": f"OL{i + 1}A", "name": name, "works": works})
    path.write_text(json.dumps({"authors": authors}))
    return names


def run_flow(csv_path: Path, env: dict[str, str]) -> tuple[float, dict, str]:
    os.environ.update(env)
    from flows.warm_library import warm_library

    before = cpu.snapshot(PROCESSES)
    started = time.perf_counter()
    summary = asyncio.run(warm_library(str(csv_path), max_depth=1, concurrency=CONCURRENCY))
    wall = time.perf_counter() - started
    return wall, summary, cpu.report(before, cpu.snapshot(PROCESSES), wall, summary["authors_queued"])


def phase(
    label: str, names: list[str], home: Path, base_env: dict[str, str], port: int, limited: bool
) -> None:
    csv_path = home / f"{label}.csv"
    csv_path.write_text("Title,Author\n" + "".join(f"Book {i},{n}\n" for i, n in enumerate(names)))
    set_faults(
        port,
        {
            p: Faults(latency_ms=LATENCY_MS if limited else 0, rate_per_s=REAL_LIMITS[p] if limited else 0)
            for p in PROVIDERS
        },
    )
    rates = (
        {"openlibrary": 3.0, "google_books": 10.0, "isbndb": 1.0}
        if limited
        else dict.fromkeys(PROVIDERS, 100000.0)
    )
    env = {
        **base_env,
        "BOOKWARM_REDIS_PREFIX": f"{label}{os.getpid()}:",
        "BOOKWARM_OPENLIBRARY_RPS": str(rates["openlibrary"]),
        "BOOKWARM_ISBNDB_RPS": str(rates["isbndb"]),
        "BOOKWARM_GOOGLE_BOOKS_RPS": str(rates["google_books"]),
    }
    wall, summary, cpu_report = run_flow(csv_path, env)
    served = stats(port)
    calls = {p: served[p]["requests"] for p in PROVIDERS}
    authors = summary["authors_queued"]
    bound = max(calls[p] / rates[p] for p in PROVIDERS) if limited else 0.0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"[{label}] {authors} authors ({summary['authors_warmed']} warmed, {summary['authors_failed']} failed), "
        f"{summary['works_cached']} works"
    )
    print(f"  wall {wall:.1f} s = {authors / wall:.1f} authors/s = {3600 * authors / wall:,.0f} authors/hour")
    print(
        f"  OpenLibrary calls/author {calls['openlibrary'] / authors:.3f}; 429s {sum(served[p]['limit_429'] for p in PROVIDERS)}"
    )
    if limited:
        print(
            f"  provider lower bound {bound:.1f} s, ratio {wall / bound:.3f}, "
            f"Prefect+cache overhead {(wall - bound) / authors * 1000:.0f} ms/author"
        )
    else:
        print(f"  time per author {wall / authors * 1000:.1f} ms (providers instant)")
    print(f"  peak RSS of this process {peak_mb:.0f} MB")
    if cpu_report:
        print("  CPU by process:\n" + cpu_report)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--authors", type=int, default=1000)
    parser.add_argument("--limited", type=int, default=200)
    parser.add_argument("--pg", help="PostgreSQL URL for a second Prefect server")
    parser.add_argument("--concurrency", type=int, default=32, help="authors in flight per shard subflow")
    args = parser.parse_args()
    global CONCURRENCY
    CONCURRENCY = args.concurrency
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        services, fake = LocalServices(home, stop_grace_s=2), FakeProviders(home)
        catalog = home / "catalog.json"
        names = make_catalog(catalog, max(args.authors, args.limited))
        pg_pid = 0
        try:
            state = services.up(with_prefect=not args.pg)
            fake_state = fake.up(catalog, real_limits=False)
            port = fake_state.port
            base = {**state.env(), **provider_env(port), "PREFECT_HOME": str(home / "client")}
            if args.pg:
                pg_pid, pg_port = start_prefect_server(
                    home / "prefect-pg",
                    home / "prefect-pg.log",
                    stop_grace_s=3,
                    database_url=args.pg,
                    timeout_s=180,
                )
                base["PREFECT_API_URL"] = f"http://127.0.0.1:{pg_port}/api"
            PROCESSES.update(
                {
                    "flow (this)": os.getpid(),
                    "prefect server": pg_pid or state.prefect_pid,
                    "redis": state.redis_pid,
                    "s3 (seaweedfs)": state.s3_pid,
                    "fake providers": fake_state.pid,
                }
            )
            if args.pg:
                PROCESSES["postgresql (all)"] = "postgres"
            backend = "PostgreSQL" if args.pg else "embedded SQLite"
            print(f"Prefect server: {backend}; reference workload {reference_ms():.0f} ms (machine speed)")
            if args.authors:
                phase("unlimited", names[: args.authors], home, base, port, limited=False)
            if args.limited:
                phase("limited", names[: args.limited], home, base, port, limited=True)
        finally:
            if pg_pid:
                stop(pg_pid, 3)
            fake.down()
            services.down()
    return 0


if __name__ == "__main__":
    from tests.bench import exit_cleanly_on_sigterm

    exit_cleanly_on_sigterm()
    raise SystemExit(main())
