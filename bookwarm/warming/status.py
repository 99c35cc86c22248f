"""A job's status as `bookwarm status --json` and the API's `GET /v1/jobs/{id}` show it: the summary's
counts, where it came from and when, its dead letters and its review list. Job records live in
Redis alone, so this works while the object store is down."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from bookwarm.keys import Keys
from bookwarm.settings import RedisSettings
from bookwarm.warming.jobs import JobStore, summary
from bookwarm.warming.review import ReviewStore


async def job_status(client: aioredis.Redis, settings: RedisSettings, job_id: str) -> dict[str, Any] | None:
    keys = Keys(settings.key_prefix)
    jobs = JobStore(client, keys, settings.job_ttl_s, settings.job_heartbeat_s)
    record = await jobs.get(job_id)
    if record is None:
        return None
    return {
        **summary(record),
        "max_depth": record.get("max_depth"),
        "source": record.get("source"),
        "started_at": record.get("started_at"),
        "finished_at": record.get("finished_at"),
        "dead_letters": await jobs.dead_letters(job_id),
        "review": await ReviewStore(client, keys, settings.job_ttl_s).for_job(job_id),
    }
