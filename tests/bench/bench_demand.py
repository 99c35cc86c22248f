"""Benchmark: the cache a reading app sees, over simulated days (`make bench-demand`).

A generated catalog; users' uploaded libraries drawn from it with Zipf-like popularity (so they
overlap as real ones do); a stream of author and ISBN lookups, Zipf-like too, including authors no
one uploaded; OpenLibrary adding works to a share of its authors every day and merging a few. The
same workload (one seed) runs four ways, each on its own Redis prefix, bucket and fake OpenLibrary
at the real limits:

  (a) uploads only; (b) plus the popular list (the catalog's 50 most popular authors, as a shipped
  list would be); (c) plus `warm-demand` every period; (d) plus stale-while-revalidate and `refresh`
  from the change feed every period.

Per day: hit rate (hot, cold, miss), stale reads (the served entry lacks a work OpenLibrary added
more than 24 h before the read), and provider calls. The clock moves with BOOKWARM_CLOCK_OFFSET_S
(bookwarm.clock), so a day takes minutes, not a day; Redis TTLs are real, so hot/cold is not
simulated (an entry stays hot for the whole run). Figures, never assertions.

Usage: python -m tests.bench.bench_demand [--authors 3000] [--users 300] [--library 30] [--reads 5000]
       [--days 3] [--periods 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bookwarm.providers.fake.catalog import isbn13_for
from bookwarm.providers.fake.runner import FakeProviders, provider_env, set_faults, stats
from bookwarm.providers.fake.server import PROVIDERS
from bookwarm.services.local import LocalServices
from tests.bench import exit_cleanly_on_sigterm, target
from tests.bench.bench_warm import benchmark_faults

DAY = 86400
STRATEGIES = ("a", "b", "c", "d")
LABELS = {
    "a": "uploads only",
    "b": "+ popular list",
    "c": "+ warm-demand",
    "d": "+ stale-while-revalidate + refresh",
}


@dataclass
class Workload:
    names: list[str]  # catalog authors, most popular first
    works: dict[str, list[str]]  # name -> ISBNs of its own works
    libraries: list[list[str]]
    reads: list[list[list[tuple[str, str]]]]  # day -> period -> [("author"|"isbn", value)]
    changes: list[list[list[dict]]]  # day -> period -> changes for /_changes (timestamps filled later)


@dataclass
class Day:
    hot: int = 0
    cold: int = 0
    miss: int = 0
    stale: int = 0
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def reads(self) -> int:
        return self.hot + self.cold + self.miss


def zipf_weights(n: int, s: float) -> list[float]:
    return [1 / (rank + 1) ** s for rank in range(n)]


def make_workload(args: argparse.Namespace, catalog_path: Path) -> Workload:
    rnd = random.Random(42)
    names = [f"Demand Author{i:04d}" for i in range(args.authors)]
    works = {n: [isbn13_for(f"d{i}/{k}") for k in range(3)] for i, n in enumerate(names)}
    catalog = {
        "authors": [
            {
                "key": f"OL{i + 1}A",
                "name": n,
                "works": [
                    {"title": f"{n} Book {k}", "year": 2000 + k, "isbn": [works[n][k]]} for k in range(3)
                ],
            }
            for i, n in enumerate(names)
        ]
    }
    catalog_path.write_text(json.dumps(catalog))
    upload_weights = zipf_weights(len(names), 1.0)
    libraries = [sorted(set(rnd.choices(names, upload_weights, k=args.library))) for _ in range(args.users)]
    read_weights = zipf_weights(len(names), 1.1)
    reads, changes = [], []
    for day in range(args.days):
        day_reads, day_changes = [], []
        for period in range(args.periods):
            chunk = []
            for name in rnd.choices(names, read_weights, k=args.reads // args.periods):
                if rnd.random() < 0.2:
                    chunk.append(("isbn", rnd.choice(works[name])))
                else:
                    chunk.append(("author", name))
            day_reads.append(chunk)
            # 2 % of OpenLibrary's authors get a new work each day, spread over the periods
            added = []
            for i in rnd.sample(range(len(names)), max(1, len(names) // 50 // args.periods)):
                title = f"{names[i]} New {day}.{period}"
                added.append(
                    {
                        "op": "add_work",
                        "author": f"OL{i + 1}A",
                        "title": title,
                        "isbn": [isbn13_for(f"d{i}/new{day}.{period}")],
                    }
                )
            added.append({"op": "noise", "count": 200})  # imports of books nobody holds
            day_changes.append(added)
        reads.append(day_reads)
        changes.append(day_changes)
    return Workload(names, works, libraries, reads, changes)


def write_libraries(path: Path, workload: Workload) -> Path:
    rows = ["Title,Author,ISBN"]
    for library in workload.libraries:
        for name in library:
            rows.append(f"{name} Book 0,{name},{workload.works[name][0]}")
    path.write_text("\n".join(rows) + "\n")
    return path


async def read_period(
    reads: list[tuple[str, str]], day: Day, added: dict[str, list[tuple[str, float]]], now: float
) -> None:
    from bookwarm.parsing.names import author_key
    from bookwarm.runtime import load_settings
    from bookwarm.warming.context import WarmContext

    async with WarmContext(load_settings(start_services=False), with_providers=False) as ctx:
        for kind, value in reads:
            if kind == "author":
                read = await ctx.cache.lookup_author(author_key(value), value)
                bibliography, name = read.value, value
            else:
                found = await ctx.cache.lookup_isbn(value)
                read = found
                bibliography, name = None, None
                if found.value is not None:
                    name = found.value["author"]["name"]
                    bibliography = (await ctx.cache.lookup_author(found.value["author"]["key"], name)).value
            if read.value is None or (bibliography is not None and bibliography.get("status") != "ok"):
                day.miss += 1
                continue
            setattr(day, read.tier, getattr(day, read.tier) + 1)
            titles = {w["title"] for w in (bibliography or {}).get("works", [])}
            if any(t not in titles and now - at > DAY for t, at in added.get(name or "", [])):
                day.stale += 1


WARM_CALLS: dict[str, int] = {}  # strategy -> OpenLibrary calls of its initial warm (uploads, list)


def run_strategy(
    strategy: str, workload: Workload, args: argparse.Namespace, home: Path, base: dict
) -> list[Day]:
    from flows.refresh import refresh
    from flows.warm_demand import warm_demand
    from flows.warm_library import warm_library
    from flows.warm_popular import warm_popular_authors

    catalog = home / f"catalog-{strategy}.json"
    catalog.write_bytes((home / "catalog.json").read_bytes())
    fake = FakeProviders(home / f"fake-{strategy}")
    port = fake.up(catalog, real_limits=True).port
    set_faults(port, benchmark_faults(limited=True))
    os.environ.update(
        {
            **base,
            **provider_env(port),
            "BOOKWARM_REDIS_PREFIX": f"demand-{strategy}-{uuid.uuid4().hex[:6]}:",
            "BOOKWARM_S3_BUCKET": f"demand-{strategy}-{uuid.uuid4().hex[:6]}",
            "BOOKWARM_SOURCE_ROOTS": str(home),
            "BOOKWARM_CLOCK_OFFSET_S": "0",
            # (c) has no stale-while-revalidate: nothing is ever stale
            "BOOKWARM_SOFT_TTL_S": str(7 * DAY if strategy == "d" else 10_000 * DAY),
        }
    )
    started = time.time()
    added: dict[str, list[tuple[str, float]]] = {}
    days: list[Day] = []
    try:
        asyncio.run(warm_library(str(write_libraries(home / "libraries.csv", workload)), max_depth=1))
        if strategy in "bcd":
            asyncio.run(warm_popular_authors(names=workload.names[:50], max_depth=0))
        WARM_CALLS[strategy] = stats(port)["openlibrary"]["requests"]
        for d in range(args.days):
            day = Day()
            before = {p: stats(port)[p]["requests"] for p in PROVIDERS}
            for period in range(args.periods):
                offset = (d + 1) * DAY + period * DAY // args.periods
                os.environ["BOOKWARM_CLOCK_OFFSET_S"] = str(offset - (time.time() - started))
                now = started + offset
                at = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
                changes = [{**c, "timestamp": at} for c in workload.changes[d][period]]
                httpx.post(
                    f"http://127.0.0.1:{port}/_changes", json={"changes": changes}, timeout=30
                ).raise_for_status()
                for change in changes:
                    if change["op"] == "add_work":
                        name = workload.names[int(change["author"][2:-1]) - 1]
                        added.setdefault(name, []).append((change["title"], now))
                asyncio.run(read_period(workload.reads[d][period], day, added, now))
                if strategy == "d":
                    asyncio.run(refresh())
                if strategy in "cd":
                    asyncio.run(warm_demand())
            day.calls = {p: stats(port)[p]["requests"] - before[p] for p in PROVIDERS}
            days.append(day)
    finally:
        fake.down()
    return days


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--authors", type=int, default=3000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--library", type=int, default=30)
    parser.add_argument("--reads", type=int, default=5000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--periods", type=int, default=2, help="warm-demand / refresh runs per day")
    parser.add_argument("--only", default="abcd", help="strategies to run, e.g. ad")
    args = parser.parse_args()
    exit_cleanly_on_sigterm()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        workload = make_workload(args, home / "catalog.json")
        uploaded = len({n for lib in workload.libraries for n in lib})
        print(
            f"catalog {args.authors} authors; {args.users} libraries of {args.library} draws ({uploaded} authors "
            f"uploaded); {args.reads} reads a day over {args.days} days, {args.periods} periods a day"
        )
        services = LocalServices(home, stop_grace_s=2)
        try:
            state = services.up(with_prefect=True)
            base = {**state.env(), "PREFECT_HOME": str(home / "client")}
            results = {s: run_strategy(s, workload, args, home, base) for s in args.only}
        finally:
            services.down()
    print(
        f"\n{'strategy':38} {'day':>3} {'hit %':>6} {'hot':>6} {'cold':>5} {'miss':>5} {'stale %':>7} "
        f"{'OL calls':>8} {'GB calls':>8} {'ISBNdb':>6}"
    )
    for strategy, days in results.items():
        for number, day in enumerate(days, start=1):
            hit = 100 * (day.hot + day.cold) / max(1, day.reads)
            print(
                f"{'(' + strategy + ') ' + LABELS[strategy]:38} {number:>3} {hit:>6.1f} {day.hot:>6} {day.cold:>5} "
                f"{day.miss:>5} {100 * day.stale / max(1, day.reads):>7.2f} {day.calls['openlibrary']:>8} "
                f"{day.calls['google_books']:>8} {day.calls['isbndb']:>6}"
            )
    print()
    for strategy, days in results.items():
        last = days[-1]
        hit = 100 * (last.hot + last.cold) / max(1, last.reads)
        target(
            f"({strategy}) last day's hit rate >= 85 % (the original system's promise)",
            f"{hit:.1f} %",
            hit >= 85,
        )
    if "d" in results:
        last = results["d"][-1]
        stale = 100 * last.stale / max(1, last.reads)
        target(
            "(d) stale reads on the last day <= 0.5 % (refresh follows OpenLibrary)",
            f"{stale:.2f} %",
            stale <= 0.5,
        )
    if "a" in results and "c" in results:
        a, c = (results[k][-1] for k in ("a", "c"))
        gained = 100 * ((c.hot + c.cold) / max(1, c.reads) - (a.hot + a.cold) / max(1, a.reads))
        target(
            "(c) warm-demand lifts the last day's hit rate over uploads alone",
            f"{gained:+.1f} points",
            gained > 0,
        )
    for strategy, calls in WARM_CALLS.items():
        print(
            f"({strategy}) the initial warm cost {calls} OpenLibrary calls: what re-warming those authors when "
            f"their 90-day markers lapse costs again ({calls / 90:.1f} a day spread over the 90 days)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
