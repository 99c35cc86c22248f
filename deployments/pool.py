"""The work pool bookwarm's deployments run on: a process pool with two queues.

- ``jobs``: warm-library, warm-popular-authors, redrive, resume, resolve-review, enrich;
- ``shards``: warm-authors, one run per shard of a job.

Each queue has its own concurrency limit (Prefect enforces it across every worker): a job waits for
its shards, so if jobs and shards shared one limit, enough jobs at once would hold every slot and
their shards would never start. Workers poll both queues.
"""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectNotFound

JOBS_QUEUE = "jobs"
SHARDS_QUEUE = "shards"


DEFAULT_SHARDS_AT_ONCE = 4
DEFAULT_JOBS_AT_ONCE = 2


async def ensure_pool(
    name: str, *, shards_at_once: int | None = None, jobs_at_once: int | None = None
) -> None:
    """Create the pool and its queues, and set the limits given (None: keep the queue's, or the
    default for a new one). Idempotent, safe on every start."""
    from prefect.workers.process import ProcessWorker

    async with get_client() as client:
        try:
            await client.read_work_pool(name)
        except ObjectNotFound:
            await client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type="process",
                    description="bookwarm: jobs and their shards (bookwarm workers start)",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                )
            )
        queues = (
            (SHARDS_QUEUE, shards_at_once, DEFAULT_SHARDS_AT_ONCE, 1),
            (JOBS_QUEUE, jobs_at_once, DEFAULT_JOBS_AT_ONCE, 2),
        )
        for queue, limit, default, priority in queues:
            try:
                found = await client.read_work_queue_by_name(queue, work_pool_name=name)
            except ObjectNotFound:
                await client.create_work_queue(
                    queue, work_pool_name=name, concurrency_limit=limit or default, priority=priority
                )
                continue
            if limit is not None:
                await client.update_work_queue(found.id, concurrency_limit=limit)
