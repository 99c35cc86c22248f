"""How each job's flow run ended, kept until Prefect is seen to hold it.

A job can end while its Prefect API is unreachable: its record in Redis says how (completed,
interrupted ...) but its flow run, and the shard runs under it, still read Running in the UI, and
nothing will ever tell Prefect otherwise: the process that owned them has exited. So every job's end
is written here first, with the process that owns the run; whoever next reaches the API (the next
job, `bookwarm status`, `services up`) reconciles: a run Prefect already holds as final is simply
forgotten, a run still open whose owner is gone is given its final state.

An end is only reconciled once its owner is gone (the same host: its pid no longer runs; another
host: ``FOREIGN_AFTER_S`` after the end), so a process still reporting its own end is never raced.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass

import redis.asyncio as aioredis

from bookwarm.cache.hot import HotCache, text
from bookwarm.keys import Keys

# A run whose owner is on another host is reconciled this long after its end: that owner's Prefect
# client gives up on a lost API well within it.
FOREIGN_AFTER_S = 600.0

# A job's status and the Prefect state type its flow run ends in. `interrupted` is Crashed: the
# run's infrastructure (its API, its process) failed, and `bookwarm resume` finishes it.
STATE_OF_STATUS = {
    "completed": "COMPLETED",
    "cancelled": "CANCELLED",
    "failed": "FAILED",
    "interrupted": "CRASHED",
}


@dataclass(frozen=True)
class RunEnd:
    job_id: str
    status: str
    message: str
    host: str
    pid: int
    ended_ts: float

    @property
    def state_type(self) -> str:
        return STATE_OF_STATUS.get(self.status, "CRASHED")

    def owner_gone(self, now: float | None = None) -> bool:
        if self.host != socket.gethostname():
            return (now or time.time()) - self.ended_ts > FOREIGN_AFTER_S
        if self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False


class RunEnds:
    def __init__(self, client: aioredis.Redis, keys: Keys, ttl_s: int) -> None:
        self.client = client
        self.key = keys.run_ends()
        self.ttl_s = ttl_s

    async def record(
        self, flow_run_id: str, job_id: str, status: str, message: str, *, owner_pid: int | None = None
    ) -> None:
        """``owner_pid``: the process that runs the flow run, when it is not this one."""
        end = RunEnd(
            job_id, status, message[:500], socket.gethostname(), owner_pid or os.getpid(), time.time()
        )
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.key, flow_run_id, json.dumps(asdict(end)))
        pipe.expire(self.key, self.ttl_s)  # every entry is reconciled or forgotten long before
        await HotCache._call(pipe.execute())

    async def pending(self) -> dict[str, RunEnd]:
        raw = await HotCache._call(self.client.hgetall(self.key))
        ends: dict[str, RunEnd] = {}
        for run_id, value in raw.items():
            run = text(run_id)
            try:
                ends[run] = RunEnd(**json.loads(value))
            except (TypeError, ValueError):
                ends[run] = RunEnd("?", "interrupted", "", "?", 0, 0.0)  # unreadable: crash it
        return ends

    async def forget(self, flow_run_ids: list[str]) -> None:
        if flow_run_ids:
            await HotCache._call(self.client.hdel(self.key, *flow_run_ids))
