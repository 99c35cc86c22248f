"""Flow: drain pending enrichment (Google Books, ISBNdb) within today's budgets.

Scheduled daily just after the providers' UTC quota reset, and runnable from the UI, the REST
API and `bookwarm enrich [JOB_ID]`. Library authors go first, then co-authors by depth; each
author's bibliography is rewritten in both tiers. A spent budget stops a provider (fail-closed):
the rest stays pending for the next day.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from bookwarm.providers.openlibrary_batch import batches
from bookwarm.warming.context import WarmContext
from bookwarm.warming.enrichment import ENRICHERS, PendingStore
from flows.enrichment_lane import chunk_size
from flows.flow_process import prepare_flow_process
from flows.params import JobId, MaxAuthors
from tasks.enrich import enrich_authors
from tasks.settings import run_settings


@flow(name="enrich", log_prints=False)
async def enrich(job_id: JobId | None = None, max_authors: MaxAuthors = 10_000) -> dict[str, Any]:
    """``job_id``: only that job's pending authors (default: everyone's)."""
    prepare_flow_process()
    settings = await run_settings()
    summary: dict[str, Any] = {"job_id": job_id}
    async with WarmContext(settings) as ctx:
        store = PendingStore(ctx)
        for provider in ENRICHERS:
            if provider == "isbndb" and ctx.providers is not None and ctx.providers.isbndb is None:
                summary[provider] = {
                    "done": 0,
                    "pending": await store.count(provider),
                    "stopped": "no API key",
                }
                continue
            entries = await store.list(provider, job_id, limit=max_authors)
            done, stopped = 0, None
            size = chunk_size(getattr(ctx.settings, provider).rate_per_s) * 5  # no shard end to wait for
            for index, chunk in enumerate(batches(entries, size)):
                result = await enrich_authors(ctx, provider, chunk, chunk[0].depth, index)
                done += result["done"]
                if result["stopped"]:
                    stopped = result["stopped"]
                    break
            summary[provider] = {"done": done, "pending": await store.count(provider), "stopped": stopped}
    return summary


ENRICH_DEPLOYMENT = "enrich/enrich"


async def hand_off_enrichment(job_id: str, summary: dict[str, Any]) -> str | None:
    """Submit an `enrich` run for a finished job's pending authors, without waiting for it, when the
    `enrich` deployment is served; otherwise they wait for its daily schedule or `bookwarm enrich`.
    Returns the submitted run's id."""
    if not any(p["pending"] for p in summary.get("enrichment", {}).values()):
        return None
    from prefect.deployments import arun_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        run = await arun_deployment(
            ENRICH_DEPLOYMENT,
            parameters={"job_id": job_id},
            timeout=0,
            as_subflow=False,
            idempotency_key=f"enrich-{job_id}",
        )
    except ObjectNotFound:
        return None
    return str(run.id)
