"""Task: read and parse a library source (path, s3://bucket/key, or base64 text)."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from bookwarm.cache.objectstore import ObjectStore, parse_s3_uri
from bookwarm.errors import SourceError
from bookwarm.parsing.ingest import parse_library
from bookwarm.parsing.llm import gemini_fallback
from bookwarm.settings import Settings


@task(name="parse-library", cache_policy=NO_CACHE, retries=0)
async def parse_source(source: str, settings: Settings) -> dict[str, Any]:
    """{format, rows, authors: [{name, key, books}], isbns, rejected}; input errors are not retried."""
    max_bytes = int(settings.ingest.max_upload_mb * 1024 * 1024)
    data: str | bytes = source
    if source.startswith("s3://"):
        bucket, key = parse_s3_uri(source)
        store = ObjectStore(settings.s3)
        fetched = await asyncio.to_thread(store.get_bytes_sync, key, bucket=bucket, max_bytes=max_bytes)
        if fetched is None:
            raise SourceError(f"{source} does not exist")
        data = fetched
    parsed = await asyncio.to_thread(
        parse_library,
        data,
        max_bytes=max_bytes,
        warm_roles=settings.warm_roles,
        fallback=gemini_fallback(settings.gemini),
    )
    return parsed.to_summary()
