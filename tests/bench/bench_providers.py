"""Benchmark: 200 authors through the fake providers at the real limits.

OpenLibrary 3/s, ISBNdb 1/s, Google Books 10/s, 150 ms latency, enforced by the server (it answers
429 over the limit). Authors are the owner's library (../shared/fixtures/library-owner) when
present, plus prolific authors with more than 1,000 works. Reports calls per provider, OpenLibrary
calls per author, 429s received, and wall time next to the lower bound (calls / rate).
Then, with limits off, whether one author costs the slowest provider or the sum of all three.
Run with `make bench-providers` (about 4 minutes: ISBNdb's 1 call/s sets the pace).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from bookwarm.parsing.ingest import parse_library
from bookwarm.providers.fake.catalog import isbn13_for
from bookwarm.providers.fake.runner import FakeProviders, provider_env, set_faults, stats
from bookwarm.providers.fake.server import PROVIDERS, REAL_BURSTS, REAL_LIMITS, Faults
from bookwarm.providers.session import ProviderSession
from bookwarm.services.local import LocalServices
from bookwarm.settings import resolve

SHARED = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "library-owner"
LATENCY_MS = 150
PROLIFIC = {"Nora Roberts": 1200, "Isaac Asimov": 2100, "Barbara Cartland": 1050}


def owner_authors(limit: int) -> list[str]:
    names: list[str] = []
    for csv_path in sorted(SHARED.glob("csv-expansion_*.csv")):
        names += [a.name for a in parse_library(csv_path).authors if a.name not in names]
    if len(names) < limit:
        names += [f"Generated Author {i}" for i in range(limit - len(names))]
    return names


def write_catalog(path: Path, names: list[str]) -> None:
    import json

    rnd = random.Random(3)
    authors = []
    for i, name in enumerate(names):
        count = PROLIFIC.get(name, rnd.randint(3, 120))
        works = [
            {"title": f"{name}: Book {n}", "year": 1950 + n % 70, "isbn": [isbn13_for(f"{i}/{n}")]}
            for n in range(count)
        ]
        authors.append({"key": f"OL{i + 1}A", "name": name, "works": works})
    path.write_text(json.dumps({"authors": authors}))


async def fetch_all(settings, names: list[str], concurrency: int) -> tuple[float, list]:
    gate = asyncio.Semaphore(concurrency)
    async with ProviderSession(settings) as session:

        async def one(name: str):
            async with gate:
                started = time.perf_counter()
                bib = await session.fetch(name)
                return bib, time.perf_counter() - started

        started = time.perf_counter()
        results = await asyncio.gather(*(one(n) for n in names))
        return time.perf_counter() - started, results


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    names = owner_authors(count - len(PROLIFIC))[: count - len(PROLIFIC)] + list(PROLIFIC)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        services, fake = LocalServices(home, stop_grace_s=2), FakeProviders(home)
        catalog = home / "catalog.json"
        write_catalog(catalog, names)
        try:
            state = services.up()
            port = fake.up(catalog).port
            set_faults(
                port,
                {
                    p: Faults(latency_ms=LATENCY_MS, rate_per_s=REAL_LIMITS[p], burst=REAL_BURSTS[p])
                    for p in PROVIDERS
                },
            )
            env = {
                **state.env(),
                **provider_env(port),
                "BOOKWARM_REDIS_PREFIX": f"bench{os.getpid()}:",
                "BOOKWARM_OPENLIBRARY_RPS": "3",
                "BOOKWARM_ISBNDB_RPS": "1",
                "BOOKWARM_GOOGLE_BOOKS_RPS": "10",
            }
            settings = resolve(env)
            wall, results = asyncio.run(fetch_all(settings, names, concurrency=50))
            served = stats(port)
            calls = {p: sum(b.calls.get(p, 0) for b, _ in results) for p in PROVIDERS}
            rates = {"openlibrary": 3.0, "isbndb": 1.0, "google_books": 10.0}
            bound = max(calls[p] / rates[p] for p in PROVIDERS)
            print(
                f"authors: {len(names)} ({len(PROLIFIC)} prolific), latency {LATENCY_MS} ms, limits OL 3/s, ISBNdb 1/s, Google 10/s"
            )
            for p in PROVIDERS:
                print(
                    f"  {p:13} calls {calls[p]:4}  429s received {served[p]['limit_429'] + served[p]['served_429']}"
                )
            print(f"OpenLibrary calls per author: {calls['openlibrary'] / len(names):.3f}")
            print(f"wall {wall:.1f} s, lower bound {bound:.1f} s, ratio {wall / bound:.3f}")
            statuses = {}
            for b, _ in results:
                statuses[b.status] = statuses.get(b.status, 0) + 1
            print(f"statuses: {statuses}")
            received = sum(served[p]["limit_429"] + served[p]["served_429"] for p in PROVIDERS)
            target("no 429 at the real limits", str(received), received == 0)
            target("within 1.1x the providers' bound", f"{wall / bound:.3f}x", wall <= 1.1 * bound)

            set_faults(port, {p: Faults(latency_ms=LATENCY_MS) for p in PROVIDERS})
            env2 = {
                **env,
                "BOOKWARM_REDIS_PREFIX": f"bench{os.getpid()}b:",
                "BOOKWARM_OPENLIBRARY_RPS": "1000",
                "BOOKWARM_ISBNDB_RPS": "1000",
                "BOOKWARM_GOOGLE_BOOKS_RPS": "1000",
            }
            _, sample = asyncio.run(fetch_all(resolve(env2), names[:20], concurrency=1))
            per_author = sum(t for _, t in sample) / len(sample)
            print(
                f"limits off, one at a time: {per_author * 1000:.0f} ms per author for 3 providers at {LATENCY_MS} ms "
                f"each (sequential would be >= {3 * LATENCY_MS} ms)"
            )
        finally:
            fake.down()
            services.down()
    return 0


if __name__ == "__main__":
    from tests.bench import exit_cleanly_on_sigterm, target

    exit_cleanly_on_sigterm()
    raise SystemExit(main())
