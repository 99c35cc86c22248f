"""Finished authors, as they finish, for whoever shows progress (the CLI's progress bar).

In one process, listeners are called directly. When a job's shards run on a work pool's workers,
each shard publishes its outcomes to a Redis channel of the job (a batch every half second) and the
job's process relays them to its own listeners: the CLI shows the same progress either way. Runs
with no listener (deployments) publish nothing and follow nothing; the Prefect progress artifact and
the job record serve them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from bookwarm.deadline import end_task
from bookwarm.warming.outcome import AuthorOutcome

Listener = Callable[[str, AuthorOutcome], None]
_listeners: list[Listener] = []
PUBLISHED = ("name", "key", "depth", "status", "works", "reason")  # what a progress display reads
FLUSH_S = 0.5


def subscribe(listener: Listener) -> Callable[[], None]:
    """Returns the unsubscribe: safe to call after `notify` dropped a failing listener (it was called
    in a `finally` and turned a job's one-line stop into a traceback) and safe to call twice."""
    _listeners.append(listener)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):
            _listeners.remove(listener)

    return unsubscribe


def has_listeners() -> bool:
    return bool(_listeners)


def notify(job_id: str, outcome: AuthorOutcome) -> None:
    """Each listener hears the outcome. One that fails (a closed terminal, a bug in a display) is
    logged and unsubscribed: showing progress must never fail the batch that made it, whose
    authors are written and counted already (it did: the batch's later outcomes were dropped)."""
    for listener in list(_listeners):
        try:
            listener(job_id, outcome)
        except Exception:
            logging.getLogger("bookwarm").warning(
                "a progress listener failed; it hears no more", exc_info=True
            )
            with contextlib.suppress(ValueError):
                _listeners.remove(listener)


class OutcomePublisher:
    """In a shard run by a worker: its authors' outcomes to the job's channel, in batches."""

    def __init__(self, client: aioredis.Redis, channel: str, job_id: str) -> None:
        self.client = client
        self.channel = channel
        self.job_id = job_id
        self._batch: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def _take(self, job_id: str, outcome: AuthorOutcome) -> None:
        if job_id == self.job_id:
            self._batch.append({k: getattr(outcome, k) for k in PUBLISHED})

    async def __aenter__(self) -> OutcomePublisher:
        self._unsubscribe = subscribe(self._take)
        self._task = asyncio.create_task(self._flush_every())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        if self._task:
            await end_task(self._task)
        await self._flush()

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self._flush()

    async def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if batch:
            with contextlib.suppress(Exception):  # progress is best effort: never a shard's failure
                await self.client.publish(self.channel, json.dumps(batch))


class OutcomeFollower:
    """In the job's process while its shards run elsewhere: their outcomes to this process's listeners."""

    def __init__(self, client: aioredis.Redis, channel: str, job_id: str) -> None:
        self.client = client
        self.channel = channel
        self.job_id = job_id
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> OutcomeFollower:
        if has_listeners():
            self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            await self._pubsub.subscribe(self.channel)
            self._task = asyncio.create_task(self._relay())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is None:
            return
        await end_task(self._task)
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()

    async def _relay(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except Exception:  # Redis lost: the progress display pauses, the job goes on
                await asyncio.sleep(1.0)
                continue
            if not message:
                continue
            for item in json.loads(message["data"]):
                notify(self.job_id, AuthorOutcome(**item))
