"""Benchmark: every author of generated OpenLibrary dumps written to both tiers (`make bench-dump`).

Dumps in the real format (gzipped, five tab-separated columns, the JSON shapes of real rows) of
200,000 authors, 1,000,000 works (a fifth of them co-written) and one edition a work with its ISBN,
generated in a child process. Then, in this process, the `--all` load as the warm-from-dump flow
runs it (bookwarm.dumps: the spill to Parquet, one partition at a time, chunks of 1,000 authors
written through the warm's own write path, two in flight) on local Redis and S3 servers.
Targets: at least 2,000 authors/s written to both tiers, peak RSS at most 1 GB.
Usage: python -m tests.bench.bench_dump [--authors 200000] [--works-per-author 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import multiprocessing
import random
import resource
import tempfile
import time
from pathlib import Path

from bookwarm.dumps.catalogue import CatalogueSpill
from bookwarm.dumps.files import find_files
from bookwarm.dumps.load import CHUNK_AUTHORS, ChunkResult, write_chunk
from bookwarm.dumps.plan import partition_plan
from bookwarm.providers.fake.catalog import isbn13_for
from bookwarm.providers.fake.dumps import AUTHOR_SHAPES, row
from bookwarm.services.local import LocalServices
from bookwarm.settings import resolve
from bookwarm.warming.context import WarmContext
from tests.bench import reference_ms

DATE = "2026-09-30"
TARGET_AUTHORS_S = 2_000
TARGET_RSS_MB = 1_024
FIRST = ["Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Farah", "Goran", "Hana", "Ivo", "Júlia"]


def generate(directory: Path, authors: int, works_per_author: int) -> dict[str, int]:
    """Writes the three dumps; returns their sizes (bytes on disk)."""
    rnd = random.Random(34)
    m = f"{DATE}T12:00:00.000000"
    with gzip.open(
        directory / f"ol_dump_authors_{DATE}.txt.gz", "wt", encoding="utf-8", compresslevel=6
    ) as out:
        for i in range(1, authors + 1):
            record = {"key": f"/authors/OL{i}A", "type": {"key": "/type/author"}, "name": _name(i)}
            out.write(row("author", record["key"], m, record))
    work = 0
    with (
        gzip.open(
            directory / f"ol_dump_works_{DATE}.txt.gz", "wt", encoding="utf-8", compresslevel=6
        ) as works,
        gzip.open(
            directory / f"ol_dump_editions_{DATE}.txt.gz", "wt", encoding="utf-8", compresslevel=6
        ) as editions,
    ):
        for i in range(1, authors + 1):
            for n in range(works_per_author):
                work += 1
                people = [i] + ([rnd.randint(1, authors)] if rnd.random() < 0.2 else [])
                record = {
                    "key": f"/works/OL{work}W",
                    "type": {"key": "/type/work"},
                    "title": f"{_name(i)} Book {n}",
                    "authors": [
                        AUTHOR_SHAPES[(work + k) % len(AUTHOR_SHAPES)](f"OL{p}A")
                        for k, p in enumerate(people)
                    ],
                    "covers": [work],
                    "subjects": ["Fiction", "Generated"],
                    "description": {
                        "type": "/type/text",
                        "value": "A generated description of plausible length. " * 3,
                    },
                }
                works.write(row("work", record["key"], m, record))
                edition = {
                    "key": f"/books/OL{work}M",
                    "type": {"key": "/type/edition"},
                    "title": record["title"],
                    "works": [{"key": record["key"]}],
                    "authors": [{"key": f"/authors/OL{p}A"} for p in people],
                    "isbn_13": [isbn13_for(f"dump/{work}")],
                    "languages": [{"key": "/languages/eng"}],
                    "publish_date": str(1950 + work % 70),
                    "publishers": ["Generated Press"],
                    "number_of_pages": 300,
                }
                editions.write(row("edition", edition["key"], m, edition))
    return {p.name: p.stat().st_size for p in directory.iterdir()}


def _name(i: int) -> str:
    return f"{FIRST[i % len(FIRST)]} Benchauthor{i}"


async def load(env: dict[str, str], dumps: Path, work_dir: Path) -> dict[str, float]:
    settings = resolve(env)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    spill = CatalogueSpill(find_files([dumps]), work_dir)
    await asyncio.to_thread(spill.build)
    timings["read and spill"] = time.perf_counter() - started
    written = ChunkResult()
    plan_s = write_s = 0.0
    async with WarmContext(settings, with_providers=False) as ctx:
        for partition in range(spill.partitions):
            t = time.perf_counter()
            plan = await asyncio.to_thread(partition_plan, spill, partition)
            plan_s += time.perf_counter() - t
            t = time.perf_counter()
            gate = asyncio.Semaphore(2)

            async def one(start: int, plan=plan, gate=gate) -> None:
                async with gate:
                    chunk = plan.authors[start : start + CHUNK_AUTHORS]
                    written.merge(
                        await write_chunk(ctx, chunk, plan.fetched, dump_as_of=plan.as_of, job_id="bench")
                    )

            await asyncio.gather(*(one(s) for s in range(0, len(plan.authors), CHUNK_AUTHORS)))
            write_s += time.perf_counter() - t
    timings["group partitions"] = plan_s
    timings["write both tiers"] = write_s
    timings["total"] = time.perf_counter() - started
    timings["authors"] = written.authors
    timings["failed"] = len(written.failed)
    timings["partitions"] = spill.partitions
    return timings


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--authors", type=int, default=200_000)
    parser.add_argument("--works-per-author", type=int, default=5)
    args = parser.parse_args()
    print(f"reference workload {reference_ms():.0f} ms (machine speed)")
    with tempfile.TemporaryDirectory() as tmp:
        dumps = Path(tmp) / "dumps"
        dumps.mkdir()
        t = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(1) as pool:  # its memory is not this process's
            sizes = pool.apply(generate, (dumps, args.authors, args.works_per_author))
        print(
            f"generated in {time.perf_counter() - t:.0f} s: "
            + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in sizes.items())
        )
        services = LocalServices(Path(tmp) / "services", stop_grace_s=2)
        try:
            state = services.up()
            env = {**state.env(), "BOOKWARM_REDIS_PREFIX": "bench-dump:"}
            timings = asyncio.run(load(env, dumps, Path(tmp) / "spill"))
        finally:
            services.down()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rate = timings["authors"] / timings["total"]
    print(
        f"{timings['authors']:,.0f} authors ({args.works_per_author} works each) in {timings['total']:.0f} s, "
        f"{timings['partitions']:.0f} partitions, {timings['failed']:.0f} not written"
    )
    for stage in ("read and spill", "group partitions", "write both tiers"):
        print(f"  {stage:<18} {timings[stage]:7.1f} s")
    print(
        f"authors/s written to both tiers: {rate:,.0f} (target >= {TARGET_AUTHORS_S:,}): "
        f"{'PASS' if rate >= TARGET_AUTHORS_S else 'FAIL'}"
    )
    print(
        f"peak RSS of the load: {peak_mb:,.0f} MB (target <= {TARGET_RSS_MB:,}): "
        f"{'PASS' if peak_mb <= TARGET_RSS_MB else 'FAIL'}"
    )
    print(json.dumps({k: round(v, 2) for k, v in timings.items()}))
    return 0


if __name__ == "__main__":
    from tests.bench import exit_cleanly_on_sigterm

    exit_cleanly_on_sigterm()
    raise SystemExit(main())
