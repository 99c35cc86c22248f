"""Benchmark: a big generated library at depth 1 on the embedded default, limits off, in one process.

What orchestration costs at scale: wall time and authors/s, failures (the target is none), peak RSS
of every process (this flow process, the Prefect server, Redis, the S3 server, the fake providers),
CPU per author per process, task runs and flow runs the Prefect server holds afterwards, the
size of its SQLite database, and that size once the run is past its retention and Prefect's
clean-up has run. Prints the rate as it runs, and each target with PASS or FAIL.
Usage: python -m tests.bench.bench_big [--authors 100000] (library authors; depth 1 adds half as
many co-authors, so the default job counts 150,000 authors)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bookwarm.providers.fake.runner import FakeProviders, set_faults
from bookwarm.services.local import LocalServices
from bookwarm.services.process import stop
from bookwarm.settings import resolve
from tests.bench import cpu, reference_ms
from tests.bench.bench_retention import age_everything, clean
from tests.bench.bench_warm import benchmark_faults, limits_off_env, make_catalog, write_library


def peak_rss_mb(pid: int) -> float:
    """The process tree's peak resident set (VmHWM of each, summed), in MB."""
    total = 0.0
    for member in cpu._tree(pid) if pid != os.getpid() else [pid]:
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


async def prefect_counts() -> dict[str, int]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return {
            kind: (await client.request("POST", f"/{kind.replace(' ', '_')}s/count", json={})).json()
            for kind in ("flow run", "task run")
        }


TARGET_WALL_S = 20 * 60  # for the default job of 150,000 authors (issue 33): 125 authors/s
TARGET_FLOW_RSS_MB = 500


class Rate:
    """Prints the authors done and the rate every ``every_s``, as the job runs (a listener of the
    job's outcomes in this process)."""

    def __init__(self, every_s: float = 30.0) -> None:
        self.every_s = every_s
        self.started = time.perf_counter()
        self.last = self.started
        self.done = 0

    def __call__(self, job_id: str, outcome: object) -> None:
        self.done += 1
        now = time.perf_counter()
        if now - self.last >= self.every_s:
            self.last = now
            print(
                f"  ... {self.done:,} authors in {now - self.started:.0f} s: {self.done / (now - self.started):.0f}/s",
                flush=True,
            )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--authors", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        services, fake = LocalServices(home, stop_grace_s=2), FakeProviders(home)
        catalog = home / "catalog.json"
        library = make_catalog(catalog, args.authors)
        try:
            state = services.up(with_prefect=True)
            fake_state = fake.up(catalog, real_limits=False)
            set_faults(fake_state.port, benchmark_faults(limited=False))
            processes: dict[str, int | str] = {
                "flow (this)": os.getpid(),
                "prefect server": state.prefect_pid,
                "redis": state.redis_pid,
                "s3 (seaweedfs)": state.s3_pid,
                "fake providers": fake_state.pid,
            }
            os.environ.update(limits_off_env(state.env(), fake_state.port, home, "big:"))
            from flows.warm_library import warm_library

            print(
                f"reference workload {reference_ms():.0f} ms (machine speed); {args.authors:,} library authors"
            )
            csv_path = write_library(home / "big.csv", library)
            before = cpu.snapshot(processes)
            from bookwarm.warming.progress import subscribe

            rate = Rate()
            unsubscribe = subscribe(rate)
            started = time.perf_counter()
            summary = asyncio.run(warm_library(str(csv_path), max_depth=1, concurrency=args.concurrency))
            wall = time.perf_counter() - started
            unsubscribe()
            authors = summary["authors_queued"]
            print(
                f"{authors:,} authors ({summary['authors_warmed']:,} warmed, {summary['authors_failed']} failed, "
                f"{summary.get('authors_not_started', 0)} not started), status {summary['status']}"
            )
            print(
                f"  bibliographies cached in {summary['duration_s']:.0f} s = {authors / summary['duration_s']:.1f} "
                f"authors/s (flow wall {wall:.0f} s)"
            )
            print("  CPU by process:\n" + cpu.report(before, cpu.snapshot(processes), wall, authors))
            print("  peak RSS:")
            for label, pid in processes.items():
                if isinstance(pid, int):
                    print(f"    {label:<16} {peak_rss_mb(pid):6.0f} MB")
            target_rate = 150_000 / TARGET_WALL_S
            achieved = authors / wall
            print(
                f"target: >= {target_rate:.0f} authors/s (150,000 in {TARGET_WALL_S // 60} min): {achieved:.1f}/s "
                f"{'PASS' if achieved >= target_rate else 'FAIL'}"
            )
            flow_mb = peak_rss_mb(os.getpid())
            print(
                f"target: flow process peak RSS <= {TARGET_FLOW_RSS_MB} MB: {flow_mb:.0f} MB "
                f"{'PASS' if flow_mb <= TARGET_FLOW_RSS_MB else 'FAIL'}"
            )
            counts = asyncio.run(prefect_counts())
            db = home / "prefect" / "prefect.db"
            size = sum(p.stat().st_size for p in db.parent.glob("prefect.db*")) / 1e6
            print(
                f"  Prefect database {size:.0f} MB; {counts['task run']:,} task runs, {counts['flow run']:,} flow runs"
            )
            stop(state.prefect_pid, 10.0)
            copy = home / "aged"
            copy.mkdir()
            shutil.copy(db, copy / "prefect.db")
            settings = resolve()
            age_everything(
                copy / "prefect.db",
                timedelta(seconds=settings.orchestration.prefect_run_retention_s, hours=1),
                timedelta(seconds=settings.orchestration.prefect_event_retention_s, hours=1),
            )
            cleaned = clean(copy, settings.orchestration.prefect_vacuum_batch)
            print(
                f"  past its retention, Prefect's clean-up (`bookwarm services clean`) took it from "
                f"{cleaned['database_bytes_before'] / 1e6:.0f} MB to {cleaned['database_bytes_after'] / 1e6:.1f} MB "
                f"of data in {cleaned['clean_up_s']} s"
            )
        finally:
            fake.down()
            services.down()
    return 0


if __name__ == "__main__":
    from tests.bench import exit_cleanly_on_sigterm

    exit_cleanly_on_sigterm()
    raise SystemExit(main())
