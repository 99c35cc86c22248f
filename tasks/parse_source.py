"""Task: check a library source against the source policy, then read and parse it."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from bookwarm.cache.objectstore import ObjectStore
from bookwarm.parsing.ingest import parse_library
from bookwarm.parsing.llm import gemini_fallback
from bookwarm.settings import Settings
from bookwarm.sources import SourcePolicy, check_source, read_allowed


@task(name="parse-library", cache_policy=NO_CACHE, retries=0)
async def parse_source(source: str, settings: Settings) -> dict[str, Any]:
    """{format, rows, authors: [{name, key, books, isbns, titles}], isbns, rejected, source}; input errors are not retried.

    A source the policy refuses is never opened: the refusal quotes nothing of it."""
    allowed = check_source(source, SourcePolicy.from_settings(settings))
    max_bytes = int(settings.ingest.max_upload_mb * 1024 * 1024)
    store = ObjectStore(settings.s3) if allowed.kind == "s3" else None
    try:
        data = await asyncio.to_thread(read_allowed, allowed, store, max_bytes)
    finally:
        if store is not None:
            store.close()
    parsed = await asyncio.to_thread(
        parse_library,
        data,
        max_bytes=max_bytes,
        warm_roles=settings.warm_roles,
        fallback=gemini_fallback(settings.gemini),
        label=allowed.label,
        max_authors=settings.ingest.max_job_authors,
    )
    summary = parsed.to_summary()
    isbns = parsed.author_isbns(settings.warm_roles)
    titles = parsed.author_titles(settings.warm_roles)
    for author in summary["authors"]:
        author["isbns"] = isbns.get(author["key"], [])
        author["titles"] = [t[:120] for t in titles.get(author["key"], [])]
    return {**summary, "source": allowed.label}
