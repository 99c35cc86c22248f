"""Benchmark: the read path over 10,000 warmed authors (`make bench-read`).

The cache is filled through bookwarm's own write path (TieredCache.write, both tiers) with generated
bibliographies of 12 works and 2 ISBNs each, on local Redis and S3 servers. Then, in this process,
the reads a reading app makes: author lookups and ISBN lookups from the hot tier, and author lookups
that miss Redis and are promoted from the object store. p50 and p99 of each, one at a time (latency,
not throughput). Targets: hot p50 at most 1 ms, cold promote p50 at most 20 ms.
Usage: python -m tests.bench.bench_read [--authors 10000] [--samples 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bookwarm.cache.demand import Demand
from bookwarm.cache.hot import HotCache
from bookwarm.cache.objectstore import ObjectStore
from bookwarm.cache.redis_client import make_redis
from bookwarm.cache.tiered import TieredCache
from bookwarm.keys import Keys
from bookwarm.providers.fake.catalog import isbn13_for
from bookwarm.services.local import LocalServices
from bookwarm.settings import resolve
from tests.bench import reference_ms, target

WORKS = 12


def bibliography(i: int) -> dict:
    key = f"reader-author{i:05d}"
    works = [
        {
            "title": f"Reader Author{i:05d} Title {n}",
            "title_key": f"reader-author{i:05d}-title-{n}",
            "openlibrary_key": f"/works/OL{i * 100 + n}W",
            "first_publish_year": 1950 + n,
            "isbn13": [isbn13_for(f"r{i}/{n}/a"), isbn13_for(f"r{i}/{n}/b")],
            "cover": None,
            "language": ["eng"],
            "description": "A generated description of a plausible length. " * 4,
            "categories": ["Fiction"],
            "authors": [{"name": f"Reader Author{i:05d}", "key": key, "openlibrary_key": f"OL{i}A"}],
            "sources": {"title": "openlibrary", "isbn13": "openlibrary", "description": "google_books"},
        }
        for n in range(WORKS)
    ]
    return {
        "author": {
            "name": f"Reader Author{i:05d}",
            "key": key,
            "openlibrary_key": f"OL{i}A",
            "confidence": 1.0,
            "needs_review": False,
            "alternate_names": [],
            "alternates": [],
        },
        "works": works,
        "works_count": WORKS,
        "complete": True,
        "status": "ok",
        "sources": {"openlibrary": {"ok": True, "works": WORKS, "complete": True, "error": None}},
        "calls": {"openlibrary": 1},
        "latency_s": {},
        "fetched_at": NOW,
        "warmed_at": NOW,
    }


NOW = datetime.now(UTC).isoformat(timespec="seconds")


def percentiles(samples_s: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples_s)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"p50 {statistics.median(ms):.3f} ms, p99 {p99:.3f} ms ({len(ms)} lookups)"


async def run(env: dict[str, str], authors: int, samples: int) -> None:
    settings = resolve(env)
    client = make_redis(settings.redis.url, max_connections=64)
    cold = ObjectStore(settings.s3)
    cold.ensure_bucket()
    keys = Keys(settings.redis.key_prefix)
    cache = TieredCache(HotCache(client, keys), cold, hot_ttl_s=3600, demand=Demand(client, keys, 7))
    started = time.perf_counter()
    gate = asyncio.Semaphore(32)

    async def write(i: int) -> None:
        async with gate:
            await cache.write(bibliography(i))

    await asyncio.gather(*(write(i) for i in range(authors)))
    print(
        f"wrote {authors:,} authors ({authors * WORKS:,} works) to both tiers in {time.perf_counter() - started:.1f} s"
    )

    rnd = random.Random(7)
    hot_author, hot_isbn, cold_author, cold_isbn, missed = [], [], [], [], []
    for _ in range(samples):
        i = rnd.randrange(authors)
        t = time.perf_counter()
        read = await cache.lookup_author(f"reader-author{i:05d}", f"Reader Author{i:05d}")
        hot_author.append(time.perf_counter() - t)
        assert read.value is not None and read.tier == "hot" and not read.stale
        isbn = isbn13_for(f"r{i}/{rnd.randrange(WORKS)}/a")
        t = time.perf_counter()
        entry, tier = await cache.read_isbn(isbn)
        hot_isbn.append(time.perf_counter() - t)
        assert entry is not None and tier == "hot"
    for i in range(samples // 4):  # nobody warmed them: a miss in both tiers, recorded as demand
        t = time.perf_counter()
        read = await cache.lookup_author(f"unread-author{i:05d}", f"Unread Author{i:05d}")
        missed.append(time.perf_counter() - t)
        assert read.value is None
    for i in rnd.sample(range(authors), min(samples // 4, authors)):
        key = f"reader-author{i:05d}"
        await client.delete(keys.author(key))  # evicted from Redis
        t = time.perf_counter()
        value, tier = await cache.read_author(key)
        cold_author.append(time.perf_counter() - t)
        assert value is not None and tier == "cold"
    # The generated ISBNs are nine hashed digits: among ~240,000 a few dozen collide, and the index
    # names the last author written. Only ISBNs that belong to one author are asked for.
    made = collections.Counter(isbn13_for(f"r{i}/{n}/a") for i in range(authors) for n in range(WORKS))
    made.update(isbn13_for(f"r{i}/{n}/b") for i in range(authors) for n in range(WORKS))
    for i in rnd.sample(range(authors), min(samples // 4, authors)):
        key = f"reader-author{i:05d}"
        own = [isbn for n in range(WORKS) if made[isbn := isbn13_for(f"r{i}/{n}/a")] == 1]
        if not own:
            continue
        isbn = rnd.choice(own)
        await client.delete(
            keys.author(key), keys.isbn(isbn)
        )  # both evicted: the ISBN index, then the object
        t = time.perf_counter()
        entry, tier = await cache.read_isbn(isbn)
        cold_isbn.append(time.perf_counter() - t)
        assert entry is not None and tier == "cold" and entry["author"]["key"] == key
    print(f"hot author lookup:    {percentiles(hot_author)}")
    print(f"hot ISBN lookup:      {percentiles(hot_isbn)}")
    print(f"cold author, promoted: {percentiles(cold_author)}")
    print(f"cold ISBN, via index: {percentiles(cold_isbn)}")
    print(f"miss, demand recorded: {percentiles(missed)}")
    for label, samples_s, bound_ms in (
        ("hot author lookup p50 <= 1 ms", hot_author, 1.0),
        ("cold author (promoted) p50 <= 20 ms", cold_author, 20.0),
        ("cold ISBN (via its index) p50 <= 20 ms", cold_isbn, 20.0),
    ):
        p50 = statistics.median(samples_s) * 1000
        target(label, f"{p50:.3f} ms", p50 <= bound_ms)
    await client.aclose()
    await cold.aclose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--authors", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=2_000)
    args = parser.parse_args()
    print(f"reference workload {reference_ms():.0f} ms (machine speed)")
    with tempfile.TemporaryDirectory() as tmp:
        services = LocalServices(Path(tmp), stop_grace_s=2)
        try:
            state = services.up()
            asyncio.run(
                run({**state.env(), "BOOKWARM_REDIS_PREFIX": "bench-read:"}, args.authors, args.samples)
            )
        finally:
            services.down()
    return 0


if __name__ == "__main__":
    from tests.bench import exit_cleanly_on_sigterm

    exit_cleanly_on_sigterm()
    raise SystemExit(main())
