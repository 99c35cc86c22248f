"""Benchmark: OpenLibrary calls per author against the batch sizes (`make bench-sweep`).

A generated library shaped like real exports (a fifth of rows without an ISBN, a tenth of ISBNs
OpenLibrary does not know, half the authors with one book, a few prolific ones with hundreds of
works), warmed at depth 0 through the real flows against the fake OpenLibrary, limits off, once per
setting: authors per batch (one ISBN query, the name queries and one works query per batch), ISBNs
asked per author, names per name query. Reports calls per author, identities found right (against
the catalog's own keys) and wall time. Figures, never assertions.

Usage: python -m tests.bench.bench_sweep [--authors 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from pathlib import Path

import redis

from bookwarm.keys import Keys
from bookwarm.parsing.names import author_key
from bookwarm.providers import openlibrary_batch
from bookwarm.providers.fake.catalog import isbn13_for
from bookwarm.providers.fake.runner import FakeProviders, provider_env, set_faults, stats
from bookwarm.providers.fake.server import PROVIDERS, Faults
from bookwarm.services.local import LocalServices
from bookwarm.settings import resolve
from tests.bench import exit_cleanly_on_sigterm, target

# (authors per batch, ISBNs asked per author, names per name query); the first is today's default
DEFAULT_ISBNS_PER_AUTHOR = openlibrary_batch.ISBNS_PER_AUTHOR  # before the sweep changes it
SETTINGS = [(25, 3, 10), (50, 3, 10), (100, 3, 10), (25, 1, 10), (50, 1, 10), (50, 3, 25), (100, 1, 25)]


def make_library(home: Path, count: int) -> tuple[Path, Path, dict[str, str]]:
    """(catalog, library CSV, author key -> its OpenLibrary key)."""
    rnd = random.Random(11)
    authors, rows, expected = [], ["Title,Author,ISBN"], {}
    for i in range(count):
        name = f"Sweep {chr(65 + i % 26)}{i:04d} Writer"
        prolific = rnd.random() < 0.05
        books = 1 if rnd.random() < 0.5 else rnd.randint(2, 6)
        works = [
            {"title": f"{name} Work {n}", "year": 1980 + n % 40, "isbn": [isbn13_for(f"s{i}/{n}")]}
            for n in range(max(books, 2))
        ]
        entry = {"key": f"OL{i + 1}A", "name": name, "works": works}
        if prolific:
            entry["generate_works"] = rnd.randint(200, 800)
        authors.append(entry)
        expected[author_key(name)] = f"OL{i + 1}A"
        for n in range(books):
            roll = rnd.random()
            isbn = "" if roll < 0.2 else isbn13_for(f"unknown{i}/{n}") if roll < 0.3 else works[n]["isbn"][0]
            rows.append(f"{name} Work {n},{name},{isbn}")
    catalog = home / "sweep-catalog.json"
    catalog.write_text(json.dumps({"authors": authors}))
    library = home / "sweep-library.csv"
    library.write_text("\n".join(rows) + "\n")
    return catalog, library, expected


def run_one(
    setting: tuple[int, int, int], library: Path, port: int, base: dict, expected: dict
) -> tuple[str, float, int]:
    """The setting's row, its OpenLibrary calls per author, and the identities it found right."""
    from flows.warm_library import warm_library

    key_batch, isbns_per_author, name_batch = setting
    openlibrary_batch.ISBNS_PER_AUTHOR = isbns_per_author
    openlibrary_batch.OpenLibraryBatches.__init__.__kwdefaults__["name_batch"] = name_batch
    prefix = f"sweep{key_batch}-{isbns_per_author}-{name_batch}-{os.getpid()}:"
    os.environ.update({**base, "BOOKWARM_REDIS_PREFIX": prefix, "BOOKWARM_OPENLIBRARY_BATCH": str(key_batch)})
    set_faults(port, {p: Faults() for p in PROVIDERS})
    started = time.perf_counter()
    summary = asyncio.run(warm_library(str(library), max_depth=1))
    wall = time.perf_counter() - started
    calls = stats(port)["openlibrary"]["requests"]
    client = redis.Redis.from_url(base["BOOKWARM_REDIS_URL"])
    keys = Keys(prefix)
    right = 0
    for key, ol_key in expected.items():
        raw = client.get(keys.processed(key))
        right += bool(raw and json.loads(raw).get("openlibrary_key") == ol_key)
    client.close()
    authors = summary["authors_queued"]
    row = (
        f"{key_batch:>6} {isbns_per_author:>6} {name_batch:>6} {calls:>7} {calls / authors:>9.3f} "
        f"{right:>5}/{len(expected):<5} {wall:>7.1f}"
    )
    return row, calls / authors, right


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--authors", type=int, default=1000)
    args = parser.parse_args()
    exit_cleanly_on_sigterm()
    for name, value in {
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }.items():
        os.environ.setdefault(name, value)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        catalog, library, expected = make_library(home, args.authors)
        services, fake = LocalServices(home, stop_grace_s=2), FakeProviders(home / "fake")
        try:
            state = services.up(with_prefect=True)
            port = fake.up(catalog, real_limits=False).port
            base = {
                **state.env(),
                **provider_env(port),
                "PREFECT_HOME": str(home / "client"),
                "BOOKWARM_SOURCE_ROOTS": str(home),
                **{f"BOOKWARM_{p}_RPS": "100000" for p in ("OPENLIBRARY", "GOOGLE_BOOKS", "ISBNDB")},
            }
            print(f"{args.authors} library authors, limits off; calls are OpenLibrary's")
            print(
                f"{'batch':>6} {'isbns':>6} {'names':>6} {'calls':>7} {'per auth':>9} {'right':>11} {'wall s':>7}"
            )
            measured = {}
            for setting in SETTINGS:
                row, per_author, right = run_one(setting, library, port, base, expected)
                measured[setting] = (per_author, right)
                print(row, flush=True)
            # the defaults bookwarm ships: the batch the resolver gives, the module's ISBNs and names per query
            shipped = (
                resolve({}).openlibrary.batch,
                DEFAULT_ISBNS_PER_AUTHOR,
                openlibrary_batch.NAME_BATCH,
            )
            if shipped in measured:
                most_right = max(r for _, r in measured.values())
                best = min(c for c, r in measured.values() if r == most_right)
                per_author, right = measured[shipped]
                target(
                    f"the shipped setting {shipped} finds every identity the best does, within 5 % of its calls",
                    f"{per_author:.3f} calls/author (best {best:.3f}), {right} right",
                    right == most_right and per_author <= 1.05 * best,
                )
        finally:
            fake.down()
            services.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
