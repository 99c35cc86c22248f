"""One shard's authors, known up front: which are fresh, which this run claims, and their
OpenLibrary identities and bibliographies fetched in batches.

Claims are taken for the whole shard before any provider call (a pipeline of ``SET NX EX``), so
no author is fetched twice even by concurrent runs, and renewed together while the shard works. An
author claimed by another run is left to its own task, which waits for that run's result.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeGuard

from bookwarm.providers.http import CallStats
from bookwarm.providers.models import Identity
from bookwarm.providers.openlibrary_batch import KeyWorks, Wanted
from bookwarm.warming.context import WarmContext


class Fetched:
    """What the batches found for one author: its identity and works, or why not.

    A plain class on purpose: Prefect walks a task's dataclass, dict and list parameters
    element by element (to find futures), and a bibliography has thousands of works."""

    __slots__ = ("asked", "error", "identity", "works")

    def __init__(
        self,
        identity: Identity | None = None,
        works: KeyWorks | None = None,
        error: str | None = None,
        *,
        asked: bool = True,
    ) -> None:
        self.identity = identity
        self.works = works
        self.error = error
        self.asked = asked

    @classmethod
    def not_asked(cls) -> Fetched:
        """A place for what a fetch of the author alone finds, kept across its task's retries."""
        return cls(asked=False)

    @property
    def incomplete(self) -> bool:
        """An identity whose works never arrived (its batch task failed outright)."""
        known = self.identity is not None and self.identity.openlibrary_key is not None
        return known and self.works is None and self.error is None

    @property
    def problem(self) -> str | None:
        return self.error or (self.works.error if self.works is not None else None)

    def needs_fetch(self, retry: bool) -> bool:
        """Fetch (again) only what OpenLibrary has not answered: a retry after a cache failure
        writes what was fetched, without asking the provider twice."""
        return not self.asked or self.incomplete or (retry and self.problem is not None)

    def take(self, other: Fetched) -> None:
        self.identity, self.works, self.error, self.asked = other.identity, other.works, other.error, True


def fresh_at(record: dict[str, Any] | None, depth: int) -> TypeGuard[dict[str, Any]]:
    """A processed marker that makes fetching the author at ``depth`` needless: warmed at this
    depth or shallower (a shallower warm also fetched its co-authors further)."""
    return record is not None and int(record.get("depth", 99)) <= depth


@dataclass
class ShardPlan:
    fresh: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> processed record: skip
    claimed: dict[str, str] = field(default_factory=dict)  # key -> claim token: this run fetches
    known_keys: dict[str, str] = field(default_factory=dict)  # key -> stored OpenLibrary key


async def plan_shard(ctx: WarmContext, authors: list[dict[str, Any]], depth: int, force: bool) -> ShardPlan:
    """Three round trips for the whole shard: the processed markers, the operator's pins and
    blocklist, then the claims."""
    plan = ShardPlan()
    keys = [a["key"] for a in authors]
    markers = await ctx.hot.processed_many(keys)
    pins, blocked = await ctx.reviews.decisions(keys)
    to_claim = []
    refresh = {a["key"] for a in authors if a.get("refresh")}  # stale: warmed again whatever the marker says
    for key, record in zip(keys, markers, strict=True):
        if key in blocked:  # an operator said it is not an author: never fetched, even when forced
            plan.fresh[key] = {"status": "blocked", "depth": depth, "works_count": 0}
            continue
        if record and record.get("openlibrary_key"):
            plan.known_keys[key] = record["openlibrary_key"]
        if key in pins:
            plan.known_keys[key] = pins[key]  # the operator's choice wins over any stored identity
        if not force and key not in refresh and fresh_at(record, depth):
            plan.fresh[key] = record
        else:
            to_claim.append(key)
    if to_claim:
        tokens = await ctx.hot.claim_many(to_claim, ctx.claim_ttl_s)
        # an author neither fresh nor claimed is held by another run: its own task waits for it
        plan.claimed = {key: token for key, token in tokens.items() if token is not None}
        recheck = [k for k in plan.claimed if not force and k not in refresh]
        await _drop_finished_meanwhile(ctx, plan, recheck, depth)
    return plan


async def _drop_finished_meanwhile(ctx: WarmContext, plan: ShardPlan, keys: list[str], depth: int) -> None:
    """Another run may have written an author and released its claim between our read of the
    markers and our claim: the claim then succeeds on a finished author. Read the markers once
    more now that the claims are held; those now fresh are skipped and their claims given back,
    so no author is fetched twice however the runs interleave."""
    if not keys:
        return
    markers = await ctx.hot.processed_many(keys)
    finished = {k: r for k, r in zip(keys, markers, strict=True) if fresh_at(r, depth)}
    if finished:
        await ctx.hot.release_many({k: plan.claimed.pop(k) for k in finished})
        plan.fresh.update(finished)


class ClaimKeeper:
    """Renews the shard's claims every third of their TTL until each is released. If this process
    dies, every claim lapses within the TTL and another run takes the author."""

    def __init__(self, ctx: WarmContext, claims: dict[str, str]) -> None:
        self.ctx = ctx
        self.claims = dict(claims)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ClaimKeeper:
        self._task = asyncio.create_task(self._renew())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.claims:
            await self.ctx.hot.release_many(self.claims)

    def forget(self, keys: list[str]) -> None:
        """Stop renewing claims their writes already released (in the same pipeline)."""
        for key in keys:
            self.claims.pop(key, None)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(max(0.5, self.ctx.claim_ttl_s / 3))
            if self.claims:
                await self.ctx.hot.extend_many(dict(self.claims), self.ctx.claim_ttl_s)


def wanted_for(author: dict[str, Any], plan: ShardPlan | None = None) -> Wanted:
    """The author as the batches take it: the library's ISBNs and the best OpenLibrary key known."""
    known = author.get("openlibrary_key") or (plan.known_keys.get(author["key"]) if plan else None)
    return Wanted(author["name"], author["key"], list(author.get("isbns") or []), known)


async def resolve_identities(ctx: WarmContext, job_id: str, wanted: list[Wanted]) -> dict[str, Fetched]:
    """Identities of authors without a known key: by the user's own ISBNs first, then by name."""
    assert ctx.providers is not None
    stats = CallStats()
    batches = ctx.providers.ol_batches
    found: dict[str, Fetched] = {}
    try:
        with_isbns = [w for w in wanted if w.isbns]
        by_isbn = await batches.identities_by_isbn(with_isbns, stats) if with_isbns else {}
        found.update({k: Fetched(identity=i) for k, i in by_isbn.items()})
        rest = [w for w in wanted if w.key not in by_isbn]
        for start in range(0, len(rest), batches.name_batch):
            identities, errors = await batches.identities_by_name(
                rest[start : start + batches.name_batch], stats
            )
            found.update({k: Fetched(identity=i) for k, i in identities.items()})
            found.update({k: Fetched(error=e) for k, e in errors.items()})
    finally:
        await ctx.jobs.incr(job_id, provider_calls=sum(stats.calls.values()))
    return found


async def fetch_works(ctx: WarmContext, job_id: str, openlibrary_keys: list[str]) -> dict[str, KeyWorks]:
    """Bibliographies of a batch of OpenLibrary keys (split and retried inside on failure)."""
    assert ctx.providers is not None
    stats = CallStats()
    try:
        return await ctx.providers.ol_batches.works_by_keys(openlibrary_keys, stats)
    finally:
        await ctx.jobs.incr(job_id, provider_calls=sum(stats.calls.values()))


async def fetch_alone(ctx: WarmContext, job_id: str, wanted: Wanted) -> Fetched:
    """One author through the same batched calls (a redrive, a retry, a claim that lapsed)."""
    if wanted.openlibrary_key:
        fetched = Fetched(identity=wanted.identity())
    else:
        fetched = (await resolve_identities(ctx, job_id, [wanted])).get(wanted.key, Fetched())
    if fetched.identity is not None and fetched.identity.openlibrary_key:
        works = await fetch_works(ctx, job_id, [fetched.identity.openlibrary_key])
        fetched.works = works.get(fetched.identity.openlibrary_key)
    return fetched
