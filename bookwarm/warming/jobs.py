"""A job's record in Redis: `warming:job:{job_id}` (a hash of live counters, 7-day TTL), its dead
letters `…:dead` (author key -> reason), the authors it queued `…:queued` (what a resume re-reads)
and those it counted `…:counted`. The job id is the flow run id.

Counting goes through the two sets, so it is idempotent: a task retry, a resume or a redrive never
counts an author twice, and queued (+ co-authors first found by a redrive or resume, counted apart)
= warmed + skipped + partial + review + unknown + failed + not started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from bookwarm.cache.hot import HotCache, dumps, text
from bookwarm.deadline import end_task
from bookwarm.errors import CacheError
from bookwarm.keys import Keys

COUNTERS = (
    "authors_queued",
    "warmed",
    "skipped",
    "partial",  # OpenLibrary gave part of the bibliography
    "review",  # a namesake: on the review list until an operator picks the person
    "unknown",
    "failed",
    "works_cached",
    "provider_calls",
    "redrive_found",  # co-authors first found by a redrive: counted apart, authors_queued stays the job's
    "resume_found",  # co-authors first found by a resume: apart, as for a redrive
    "resumes",  # how many times `bookwarm resume` picked the job up
    "shard_retries",  # shard subflows the Prefect API failed to start or report (then run again)
)
DONE = ("warmed", "skipped", "partial", "review", "unknown", "failed")  # an author ends as one of these
ENRICHMENT = tuple(f"enrich_{state}_{p}" for p in ("google_books", "isbndb") for state in ("done", "pending"))


STALE_BEATS = 3  # missed heartbeats after which a running job reads as interrupted
# A shard's hand-over points (its authors at the start, its co-authors at the end, the level's
# co-authors after it) ride out a Redis restart of a few seconds: 0.5 s doubling, for
# BOOKWARM_HANDOVER_PATIENCE_S in all (15.5 s: 0.5 + 1 + 2 + 4 + 8).
HANDOVER_PATIENCE_S = 15.5
ENDED = ("completed", "failed", "cancelled", "interrupted")

# KEYS: counted set, job hash. ARGV: author key, counter, works. Counts an author once per job.
_COUNT = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  if tonumber(ARGV[3]) > 0 then redis.call('HINCRBY', KEYS[2], 'works_cached', ARGV[3]) end
  return 1
end
return 0
"""
# KEYS: queued hash, job hash. ARGV: counter field, then (author key, author json) pairs.
_ENQUEUE = """
local added = 0
for i = 3, #ARGV, 2 do
  added = added + redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
if added > 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[1], added)
  redis.call('HINCRBY', KEYS[2], ARGV[2], added)
end
return added
"""


def queued_at(depth: int) -> str:
    """The job record's field counting authors queued at ``depth``: levels overlap, so a depth's
    total (the progress display's row) cannot be read off the job's total any more."""
    return f"queued_d{depth}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class JobHeartbeat:
    """Beats a job's record every ``interval_s`` while the run's process lives (a lost Redis only
    skips beats: the run goes on, and its authors report the outage themselves)."""

    def __init__(self, jobs: JobStore, job_id: str, interval_s: float) -> None:
        self.jobs = jobs
        self.job_id = job_id
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> JobHeartbeat:
        self._task = asyncio.create_task(self._beat())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            await end_task(self._task)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            with contextlib.suppress(CacheError):
                await self.jobs.beat(self.job_id)


class JobStore:
    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        ttl_s: int,
        heartbeat_s: float = 10.0,
        *,
        patience_s: float = HANDOVER_PATIENCE_S,
    ) -> None:
        self.client = client
        self.keys = keys
        self.ttl_s = ttl_s
        self.heartbeat_s = heartbeat_s
        self.patience_s = patience_s
        self._count = client.register_script(_COUNT)
        self._enqueue = client.register_script(_ENQUEUE)

    def heartbeat(self, job_id: str) -> JobHeartbeat:
        return JobHeartbeat(self, job_id, self.heartbeat_s)

    async def _patiently(self, call: Any) -> Any:
        """``call()`` (a Redis command), again after a pause while Redis fails, for ``patience_s``."""
        return await patiently(call, self.patience_s)

    async def start(
        self, job_id: str, *, source: str, max_depth: int, authors: list[dict[str, Any]], force: bool
    ) -> None:
        key = self.keys.job(job_id)
        fields: dict[FieldT, EncodableT] = {
            "job_id": job_id,
            "status": "running",
            "source": source,
            "max_depth": max_depth,
            "force": int(force),
            "started_at": now_iso(),
            "started_ts": time.time(),
            "heartbeat_ts": time.time(),
            **dict.fromkeys(COUNTERS, 0),
        }
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, mapping=fields)
        pipe.expire(key, self.ttl_s)
        await HotCache._call(pipe.execute())
        try:
            await self.enqueue(job_id, authors, 0)
        except BaseException:
            # Stopped (SIGTERM, Ctrl-C, a cancel) or failed while queueing: a job with part of its
            # authors queued could be neither resumed nor finished, so none of it is kept.
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await self.abandon(job_id)
            raise

    async def abandon(self, job_id: str) -> None:
        """Forget a job that never started: its record and its queue."""
        await HotCache._call(self.client.delete(self.keys.job(job_id), self.keys.job_queued(job_id)))

    async def enqueue(
        self, job_id: str, authors: list[dict[str, Any]], depth: int, field: str = "authors_queued"
    ) -> int:
        """Queue authors at ``depth``; only those the job never queued add to ``field``. Returns how many."""
        added = 0
        for start in range(0, len(authors), 1000):  # bounded script arguments
            argv: list[Any] = [field, queued_at(depth)]
            for author in authors[start : start + 1000]:
                argv += [author["key"], dumps({**author, "depth": depth})]
            added += int(
                await HotCache._call(
                    self._enqueue(keys=[self.keys.job_queued(job_id), self.keys.job(job_id)], args=argv)
                )
            )
        await self._expire(job_id)
        return added

    async def count(self, job_id: str, author_key: str, counter: str, works: int = 0) -> bool:
        """Count an author's outcome once per job; False when it was already counted."""
        counted = await HotCache._call(
            self._count(
                keys=[self.keys.job_counted(job_id), self.keys.job(job_id)], args=[author_key, counter, works]
            )
        )
        return bool(counted)

    async def count_many(self, job_id: str, outcomes: list[tuple[str, str, int]]) -> list[bool]:
        """``count`` for a batch of (author key, counter, works), in one round trip."""
        if not outcomes:
            return []
        pipe = self.client.pipeline(transaction=False)
        keys = [self.keys.job_counted(job_id), self.keys.job(job_id)]
        for author_key, counter, works in outcomes:
            await self._count(keys=keys, args=[author_key, counter, works], client=pipe)
        return [bool(c) for c in await HotCache._call(pipe.execute())]

    async def _expire(self, job_id: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key in (self.keys.job(job_id), self.keys.job_queued(job_id), self.keys.job_counted(job_id)):
            pipe.expire(key, self.ttl_s)
        await HotCache._call(pipe.execute())

    async def queued_authors(self, job_id: str, author_keys: list[str]) -> list[dict[str, Any]]:
        """The queued authors of ``author_keys``, in that order (a shard run on a worker gets keys,
        not authors: its parameters stay small whatever the library holds)."""
        if not author_keys:
            return []
        raw = await self._patiently(lambda: self.client.hmget(self.keys.job_queued(job_id), author_keys))
        missing = [key for key, value in zip(author_keys, raw, strict=True) if value is None]
        if missing:
            raise CacheError(
                f"job {job_id}: {len(missing)} authors of this shard are not queued (first {missing[0]!r})"
            )
        authors = [json.loads(value) for value in raw]
        for author in authors:
            author.pop("depth", None)
        return authors

    async def add_found(self, job_id: str, pass_id: str, depth: int, people: list[dict[str, Any]]) -> None:
        """Co-authors a batch of a shard found at ``depth``, appended as one entry: the job's pass
        reads them while the level still runs, from where it last read (``found_since``)."""
        if not people:
            return
        key = self.keys.job_found(job_id, pass_id, depth)

        def write() -> Any:
            pipe = self.client.pipeline(transaction=True)
            pipe.rpush(key, dumps(people))
            pipe.expire(key, self.ttl_s)
            return pipe.execute()

        await self._patiently(write)

    async def hand_over(self, job_id: str, pass_id: str, depth: int, shard: int) -> None:
        """Shard ``shard`` of the pass at ``depth`` counted all its authors and handed over every
        co-author it found (``add_found``, which it awaited first)."""
        key = self.keys.job_handed_over(job_id, pass_id, depth)

        def write() -> Any:
            pipe = self.client.pipeline(transaction=True)
            pipe.sadd(key, shard)
            pipe.expire(key, self.ttl_s)
            return pipe.execute()

        await self._patiently(write)

    async def handed_over(self, job_id: str, pass_id: str, depth: int) -> set[int]:
        """The shards of the pass at ``depth`` that have handed over all they found (``hand_over``)."""
        key = self.keys.job_handed_over(job_id, pass_id, depth)
        return {int(text(s)) for s in await self._patiently(lambda: self.client.smembers(key))}

    async def found_since(
        self, job_id: str, pass_id: str, depth: int, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """Co-authors found at ``depth`` from entry ``offset`` on (each once, first found first),
        and the offset to read from next."""
        key = self.keys.job_found(job_id, pass_id, depth)
        raw = await self._patiently(lambda: self.client.lrange(key, offset, -1))
        people: dict[str, dict[str, Any]] = {}
        for entry in raw:
            for person in json.loads(entry):
                people.setdefault(person["key"], person)
        return list(people.values()), offset + len(raw)

    async def queued(self, job_id: str) -> dict[int, list[dict[str, Any]]]:
        """Every author the job queued, by depth (what a resume starts from)."""
        raw = await HotCache._call(self.client.hgetall(self.keys.job_queued(job_id)))
        by_depth: dict[int, list[dict[str, Any]]] = {}
        for value in raw.values():
            author = json.loads(value)
            by_depth.setdefault(int(author.pop("depth")), []).append(author)
        return dict(sorted(by_depth.items()))

    async def resumed(self, job_id: str) -> None:
        """A resume (or redrive) picked the job up: running again, beating, counted apart."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.job(job_id), mapping={"status": "running", "heartbeat_ts": time.time()})
        pipe.hdel(self.keys.job(job_id), "finished_at")
        await HotCache._call(pipe.execute())

    async def uncounted(self, job_id: str, author_keys: list[str]) -> set[str]:
        """Those of ``author_keys`` the job has not counted yet (not started, or lost on the way)."""
        if not author_keys:
            return set()
        flags = await HotCache._call(self.client.smismember(self.keys.job_counted(job_id), author_keys))
        return {key for key, flag in zip(author_keys, flags, strict=True) if not flag}

    async def counted(self, job_id: str) -> set[str]:
        raw = await HotCache._call(self.client.smembers(self.keys.job_counted(job_id)))
        return {text(k) for k in raw}

    async def incr(self, job_id: str, **amounts: int) -> None:
        key = self.keys.job(job_id)
        pipe = self.client.pipeline(transaction=True)
        for name, amount in amounts.items():
            if amount:
                pipe.hincrby(key, name, amount)
        pipe.expire(key, self.ttl_s)
        await HotCache._call(pipe.execute())

    async def beat(self, job_id: str) -> None:
        """The job's process is alive: without a beat for ``STALE_BEATS`` intervals, a running job
        reads as ``interrupted`` (its process was killed or lost)."""
        await HotCache._call(self.client.hset(self.keys.job(job_id), "heartbeat_ts", time.time()))

    async def set_fields(self, job_id: str, **fields: EncodableT) -> None:
        mapping: dict[FieldT, EncodableT] = {name: value for name, value in fields.items()}
        await HotCache._call(self.client.hset(self.keys.job(job_id), mapping=mapping))

    async def add_dead_letter(self, job_id: str, author: dict[str, str], depth: int, reason: str) -> bool:
        """Records the dead letter; True when this counted the author (False: already counted)."""
        key = self.keys.dead_letters(job_id)
        entry = {
            "name": author["name"],
            "key": author["key"],
            "depth": depth,
            "reason": reason[:500],
            "failed_at": now_iso(),
        }
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, author["key"], dumps(entry))
        pipe.expire(key, self.ttl_s)
        await HotCache._call(pipe.execute())
        return await self.count(job_id, author["key"], "failed")

    async def note_dead_letter_run(self, job_id: str, author_key: str, task_run_id: str) -> None:
        key = self.keys.dead_letter_runs(job_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, author_key, task_run_id)
        pipe.expire(key, self.ttl_s)
        await HotCache._call(pipe.execute())

    async def dead_letter_runs(self, job_id: str) -> dict[str, str]:
        """Author key -> the task run that showed it dead in Prefect."""
        raw = await HotCache._call(self.client.hgetall(self.keys.dead_letter_runs(job_id)))
        return {text(k): text(v) for k, v in raw.items()}

    async def forget_dead_letter_runs(self, job_id: str, author_keys: list[str]) -> None:
        if author_keys:
            await HotCache._call(self.client.hdel(self.keys.dead_letter_runs(job_id), *author_keys))

    async def remove_dead_letter(self, job_id: str, author_key: str) -> None:
        """Before a redrive: the author is neither failed nor counted until it runs again."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.keys.dead_letters(job_id), author_key)
        pipe.srem(self.keys.job_counted(job_id), author_key)
        pipe.hincrby(self.keys.job(job_id), "failed", -1)
        await HotCache._call(pipe.execute())

    async def dead_letters(self, job_id: str) -> list[dict[str, Any]]:
        raw = await HotCache._call(self.client.hgetall(self.keys.dead_letters(job_id)))
        return sorted((json.loads(v) for v in raw.values()), key=lambda e: (e["depth"], e["key"]))

    async def get(self, job_id: str) -> dict[str, Any] | None:
        """The record, with a running job whose heartbeat stopped reported as ``interrupted``."""
        raw = await HotCache._call(self.client.hgetall(self.keys.job(job_id)))
        if not raw:
            return None
        record: dict[str, Any] = {text(k): text(v) for k, v in raw.items()}
        for name in list(record):
            if (
                name in COUNTERS
                or name in ENRICHMENT
                or name in ("max_depth", "force")
                or name.startswith("queued_d")
            ):
                record[name] = int(record[name])
        beat = float(record.get("heartbeat_ts") or record.get("started_ts") or 0)
        if record.get("status") == "running" and time.time() - beat > STALE_BEATS * self.heartbeat_s:
            record["status"] = "interrupted"
        return record

    async def stored_status(self, job_id: str) -> str | None:
        """The status the job's own process last wrote (None: no record), not read through its
        heartbeat: a live job whose beat is late (a loaded machine, Redis ridden out) is still running."""
        raw = await HotCache._call(self.client.hget(self.keys.job(job_id), "status"))
        return text(raw) if raw else None

    async def finish(self, job_id: str, status: str) -> dict[str, Any]:
        """Called when every level's bibliographies are cached: ``duration_s`` is that time, and
        enrichment still pending is the `enrich` flow's."""
        record = await self.get(job_id) or {}
        duration = time.time() - float(record.get("started_ts", time.time()))
        await self.set_fields(job_id, status=status, finished_at=now_iso(), duration_s=round(duration, 3))
        return summary(await self.get(job_id) or {})


async def patiently(
    call: Any, patience_s: float, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> Any:
    """``call()`` (a Redis command), again after pauses of 0.5 s doubling while Redis fails, until
    the pauses reach ``patience_s``; then its CacheError. ``sleep`` is how it pauses."""
    waited, pause = 0.0, 0.5
    while True:
        try:
            return await HotCache._call(call())
        except CacheError:
            if waited >= patience_s:
                raise
            pause = min(pause, patience_s - waited)
            await sleep(pause)
            waited += pause
            pause *= 2


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """The job summary: the `bookwarm warm --json` shape."""
    return {
        "job_id": record.get("job_id"),
        "status": record.get("status"),
        "authors_queued": record.get("authors_queued", 0),
        "authors_warmed": record.get("warmed", 0),
        "authors_skipped": record.get("skipped", 0),
        "authors_partial": record.get("partial", 0),
        "authors_review": record.get("review", 0),
        "authors_unknown": record.get("unknown", 0),
        "authors_failed": record.get("failed", 0),
        # queued (+ found by a redrive or resume) = warmed + skipped + partial + review + unknown
        # + failed + not started, at every end state
        "authors_not_started": max(
            0,
            record.get("authors_queued", 0)
            + record.get("redrive_found", 0)
            + record.get("resume_found", 0)
            - sum(record.get(k, 0) for k in DONE),
        ),
        "redrive_found": record.get("redrive_found", 0),
        "resume_found": record.get("resume_found", 0),
        "resumes": record.get("resumes", 0),
        "shard_retries": record.get("shard_retries", 0),
        "works_cached": record.get("works_cached", 0),
        "provider_calls": record.get("provider_calls", 0),
        "duration_s": float(record.get("duration_s", 0) or 0),
        "enrichment": {
            p: {
                "done": record.get(f"enrich_done_{p}", 0),
                "pending": max(0, record.get(f"enrich_pending_{p}", 0)),
            }
            for p in ("google_books", "isbndb")
        },
    }


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    """A job summary as table rows; nested counts (enrichment per provider) one row each."""
    rows: list[tuple[str, Any]] = []
    for key, value in summary.items():
        if isinstance(value, dict):
            for inner, counts in value.items():
                shown = (
                    ", ".join(f"{k} {v}" for k, v in counts.items()) if isinstance(counts, dict) else counts
                )
                rows.append((f"{key} {inner}", shown))
        elif not isinstance(value, list):
            rows.append((key, value))
    return rows
