"""`bookwarm deployments serve`: serve the eight deployments from this process against a Prefect server.

- warm-library: run from the UI or REST API with {source, max_depth, force}.
- warm-popular-authors: weekly, Monday 03:00 UTC; names from the Prefect Variable
  `bookwarm-popular-authors` (JSON list), else the 29 authors bookwarm ships with.
- redrive: re-run a job's dead letters, {job_id}.
- resume: finish a job that was interrupted or cancelled, {job_id}.
- resolve-review: pin an author's OpenLibrary key or block a name, {name, openlibrary_key | not_an_author}.
- enrich: daily at 00:10 UTC, just after the providers' quotas reset; {job_id} (optional).

Each run starts in a new process (Prefect's runner); on many machines, run this on each (or use a
work pool and workers): they share the Prefect server, Redis and the object store.

SIGTERM stops it within ``STOP_GRACE_S``: Prefect's runner shuts down gracefully (pausing the
served schedules), but with its server down that waits on the client's retries for half a minute
and more, so past the grace the process exits anyway (its runs are processes of their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from typing import Any

from prefect.exceptions import TerminationSignal
from prefect.runner import Runner
from prefect.schedules import Cron

from flows.enrich import enrich
from flows.redrive import redrive
from flows.refresh import refresh
from flows.resolve_review import resolve_review
from flows.resume import resume
from flows.warm_demand import warm_demand
from flows.warm_from_dump import warm_from_dump
from flows.warm_library import warm_library
from flows.warm_popular import warm_popular_authors

WEEKLY_MONDAY_0300_UTC = "0 3 * * 1"
DAILY_AFTER_QUOTA_RESET = "10 0 * * *"  # Google Books and ISBNdb quotas reset at 00:00 UTC
HOURLY_AT_5 = "5 * * * *"  # just after each hour's demand bucket closes
HOURLY_AT_35 = "35 * * * *"  # the change feed, half an hour apart from warm-demand
DUMP_DESCRIPTION = (
    "Warm authors from OpenLibrary's monthly dumps, without its API (paths on the worker's machine)."
)


def build_deployments() -> list:
    return [
        warm_library.to_deployment(
            name="warm-library",
            description="Warm every author of a library export (path, s3://bucket/key or base64 CSV).",
            parameters={"max_depth": 2, "force": False},
            tags=["bookwarm"],
        ),
        warm_popular_authors.to_deployment(
            name="warm-popular-authors",
            schedule=Cron(WEEKLY_MONDAY_0300_UTC, timezone="UTC"),
            description="Weekly warm of popular authors (Prefect Variable bookwarm-popular-authors).",
            tags=["bookwarm"],
        ),
        warm_demand.to_deployment(
            name="warm-demand",
            schedule=Cron(HOURLY_AT_5, timezone="UTC"),
            description="Hourly: warm what readers missed or found stale, most-missed first, within its bounds.",
            tags=["bookwarm"],
        ),
        refresh.to_deployment(
            name="refresh",
            schedule=Cron(HOURLY_AT_35, timezone="UTC"),
            description="Hourly: re-warm the cached authors OpenLibrary changed, from its change feed.",
            tags=["bookwarm"],
        ),
        redrive.to_deployment(name="redrive", description="Re-run a job's dead letters.", tags=["bookwarm"]),
        resolve_review.to_deployment(
            name="resolve-review",
            description="Answer a review: pin an author's OpenLibrary key (and warm it), or block a name.",
            tags=["bookwarm"],
        ),
        resume.to_deployment(
            name="resume",
            description="Finish a job that was interrupted or cancelled (authors already done are not refetched).",
            tags=["bookwarm"],
        ),
        warm_from_dump.to_deployment(
            name="warm-from-dump",
            description=DUMP_DESCRIPTION,
            tags=["bookwarm"],
        ),
        enrich.to_deployment(
            name="enrich",
            schedule=Cron(DAILY_AFTER_QUOTA_RESET, timezone="UTC"),
            description="Drain pending Google Books / ISBNdb enrichment within today's budgets "
            "(library authors first, then co-authors by depth).",
            tags=["bookwarm"],
        ),
    ]


STOP_GRACE_S = 5.0


class PromptlyStoppedRunner(Runner):
    """Prefect's runner, whose graceful SIGTERM shutdown is bounded by ``STOP_GRACE_S``."""

    def handle_sigterm(self, *args: Any, **kwargs: Any) -> None:
        timer = threading.Timer(STOP_GRACE_S, os._exit, args=(0,))
        timer.daemon = True
        timer.start()
        super().handle_sigterm(*args, **kwargs)


async def _serve(deployments: list[Any], limit: int | None) -> None:
    runner = PromptlyStoppedRunner(pause_on_shutdown=True, limit=limit)
    for deployment in deployments:
        await runner.aadd_deployment(deployment)
    print(
        f"serving {len(deployments)} deployments: "
        + ", ".join(d.name for d in deployments)
        + "; Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    await runner.start()


def main(limit: int | None = None) -> None:
    """What `prefect.serve` does, with a runner that stops promptly."""
    with contextlib.suppress(KeyboardInterrupt, TerminationSignal):
        asyncio.run(_serve(build_deployments(), limit))  # built here: in a loop they would be coroutines


if __name__ == "__main__":
    main()
