"""Benchmark: what Prefect's clean-up (as `bookwarm services up` configures it) does to a real database.

A generated library is warmed at depth 1 on the embedded default (SQLite server), limits off, once;
the server is stopped and its database copied. On each copy every run is aged past the run
retention and every event past the event retention (their end times moved back, as days passing
would), then `python -m tasks.prefect_retention` (what `bookwarm services clean` runs) deletes them
in batches of 50, 200 and 1,000 rows. Printed: the database's data before and after, the clean-up's
time per batch size, the bytes a warmed author leaves, and what a year of hourly `warm-demand` and
daily `refresh` runs keeps under the retention. Targets with PASS or FAIL.
Usage: python -m tests.bench.bench_retention [--authors 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bookwarm.providers.fake.runner import FakeProviders, set_faults
from bookwarm.services.local import LocalServices, prefect_server_env
from bookwarm.services.process import stop
from bookwarm.settings import resolve
from tests.bench import reference_ms
from tests.bench.bench_warm import benchmark_faults, limits_off_env, make_catalog, write_library

BATCHES = (50, 200, 1000)
TARGET_BATCH_S = 2.0  # one batch's transaction: short enough not to hold SQLite's lock against the API
TARGET_LEFT = 0.05  # of the data the job wrote, after everything is past its retention


def age_everything(database: Path, runs_by: timedelta, events_by: timedelta) -> None:
    """Move every end and event back, as days passing would (the API takes no past timestamps)."""
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    runs_cut = (datetime.now(UTC) - runs_by).strftime(fmt)
    events_cut = (datetime.now(UTC) - events_by).strftime(fmt)
    with sqlite3.connect(database) as db:
        db.execute("UPDATE flow_run SET end_time = ? WHERE end_time IS NOT NULL", (runs_cut,))
        db.execute("UPDATE events SET occurred = ?", (events_cut,))
        db.execute("UPDATE event_resources SET occurred = ?", (events_cut,))


def data_bytes(database: Path) -> int:
    """The pages in use (a deleted row's page is reused, not returned to the file system)."""
    with sqlite3.connect(database) as db:
        pages, free, size = (
            db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count", "page_size")
        )
    return int((pages - free) * size)


def clean(home: Path, batch: int) -> dict:
    env = {**prefect_server_env(home, None), "PREFECT_SERVER_SERVICES_DB_VACUUM_BATCH_SIZE": str(batch)}
    done = subprocess.run(
        [sys.executable, "-m", "tasks.prefect_retention"],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise SystemExit(f"clean-up failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def rows(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as db:
        return {
            t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("flow_run", "task_run", "events", "log")
        }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--authors", type=int, default=10_000)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    settings = resolve()
    run_retention = timedelta(seconds=settings.orchestration.prefect_run_retention_s)
    event_retention = timedelta(seconds=settings.orchestration.prefect_event_retention_s)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        services, fake = LocalServices(home, stop_grace_s=5), FakeProviders(home)
        catalog = home / "catalog.json"
        library = make_catalog(catalog, args.authors)
        try:
            state = services.up(with_prefect=True)
            empty = data_bytes(home / "prefect" / "prefect.db")  # the server's own rows before any run
            fake_state = fake.up(catalog, real_limits=False)
            set_faults(fake_state.port, benchmark_faults(limited=False))
            os.environ.update(limits_off_env(state.env(), fake_state.port, home, "retention:"))
            from flows.warm_library import warm_library

            print(
                f"reference workload {reference_ms():.0f} ms (machine speed); {args.authors:,} library authors"
            )
            summary = asyncio.run(warm_library(str(write_library(home / "lib.csv", library)), max_depth=1))
            authors = summary["authors_queued"]
            print(
                f"warmed {authors:,} authors ({summary['authors_failed']} failed) in {summary['duration_s']:.0f} s"
            )
            stop(state.prefect_pid, 10.0)  # the copies are cleaned with no server writing beside them
        finally:
            fake.down()
            services.down()
        source = home / "prefect" / "prefect.db"
        counted = rows(source)
        print(
            f"database after one job: {counted['flow_run']:,} flow runs, {counted['task_run']:,} task runs, "
            f"{counted['events']:,} events, {counted['log']:,} log lines"
        )
        results = {}
        for batch in BATCHES:
            copy = home / f"clean-{batch}"
            copy.mkdir()
            shutil.copy(source, copy / "prefect.db")
            age_everything(
                copy / "prefect.db", run_retention + timedelta(hours=1), event_retention + timedelta(hours=1)
            )
            results[batch] = clean(copy, batch)
            left = rows(copy / "prefect.db")
            r = results[batch]
            print(
                f"  batches of {batch:>5}: {r['database_bytes_before'] / 1e6:7.1f} MB -> "
                f"{r['database_bytes_after'] / 1e6:5.1f} MB in {r['clean_up_s']:6.1f} s; left {left}"
            )
        chosen = settings.orchestration.prefect_vacuum_batch
        r = results.get(chosen) or results[200]
        per_author = r["database_bytes_before"] / authors
        batches = max(1, counted["flow_run"] // chosen) + max(1, counted["events"] // chosen)
        per_batch_s = r["clean_up_s"] / batches
        # a year under the retention: only the runs of the last retention period are kept
        kept_days = run_retention.total_seconds() / 86400
        demand_authors, refresh_authors = settings.orchestration.demand_max_authors, 5_000
        year_kept = kept_days * (24 * demand_authors + refresh_authors) * per_author
        print(f"  {per_author / 1e3:.1f} KB of Prefect data per warmed author")
        print(
            f"  a year of hourly warm-demand ({demand_authors} authors each, at most) and daily refresh "
            f"({refresh_authors:,} authors): ~{year_kept / 1e6:.0f} MB kept at any time "
            f"(runs {kept_days:g} days); without the clean-up ~{365 / kept_days * year_kept / 1e9:.1f} GB a year"
        )
        left_share = (r["database_bytes_after"] - empty) / (r["database_bytes_before"] - empty)
        print(
            f"target: a clean-up batch (batches of {chosen}) <= {TARGET_BATCH_S} s: ~{per_batch_s:.2f} s a batch "
            f"{'PASS' if per_batch_s <= TARGET_BATCH_S else 'FAIL'}"
        )
        print(
            f"target: <= {TARGET_LEFT:.0%} of the job's data left once all is past retention (an empty server "
            f"holds {empty / 1e6:.1f} MB): {left_share:.1%} "
            f"{'PASS' if left_share <= TARGET_LEFT else 'FAIL'}"
        )
    return 0


if __name__ == "__main__":
    from tests.bench import exit_cleanly_on_sigterm

    exit_cleanly_on_sigterm()
    raise SystemExit(main())
