"""Which demanded authors a `warm-demand` run warms: the most-missed first, only those not fresh,
within the run's bounds.

Bounds, so that a flood of junk misses cannot spend OpenLibrary's day: at most ``max_authors`` a
run, and all warm-demand runs of a UTC day together at most a share of the day's OpenLibrary calls
(its quota when one is set, else its rate for 24 h), counted in ``demand:spent:{day}``. An author
whose entry is fresh is left alone; one that is stale (fetched over the soft TTL ago) is refreshed
by its stored OpenLibrary key; a name on the blocklist, or one OpenLibrary did not know or could not
tell apart (a negative entry), is not asked again before its marker lapses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bookwarm import clock
from bookwarm.cache.hot import HotCache
from bookwarm.parsing.names import author_key, is_junk
from bookwarm.providers.http import CallStats
from bookwarm.providers.limits import utc_day  # the quotas' day: spend counts against it
from bookwarm.providers.openlibrary_batch import OpenLibraryBatches
from bookwarm.warming.context import WarmContext

# OpenLibrary calls per author warmed, measured at 0.067-0.18 (docs/decisions.md): the budget
# assumes the dearer end, and the calls a run really spent are what the next run's budget counts.
CALLS_PER_AUTHOR = 0.2
NEGATIVE = ("unknown", "review")


@dataclass
class DemandPlan:
    authors: list[dict[str, Any]] = field(default_factory=list)
    asked: int = 0  # distinct authors asked for (ISBNs resolved to theirs)
    fresh: int = 0
    negative: int = 0
    blocked: int = 0
    over_budget: int = 0
    isbns_asked: int = 0
    isbns_unknown: int = 0  # OpenLibrary does not know them
    calls_left: int = 0
    calls: int = 0  # spent planning (ISBN resolution)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "authors"} | {"to_warm": len(self.authors)}


def day_capacity(ctx: WarmContext) -> int:
    openlibrary = ctx.settings.openlibrary
    return openlibrary.daily_quota or int(openlibrary.rate_per_s * 86400)


async def calls_left(ctx: WarmContext) -> int:
    share = ctx.settings.orchestration.demand_openlibrary_share
    spent = await HotCache._call(ctx.redis.get(ctx.keys.demand_spent(utc_day())))
    return max(0, int(share * day_capacity(ctx)) - int(spent or 0))


async def record_spent(ctx: WarmContext, calls: int) -> None:
    key = ctx.keys.demand_spent(utc_day())
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.incrby(key, calls)
    pipe.expire(key, 2 * 86400)
    await HotCache._call(pipe.execute())


async def plan_demand(
    ctx: WarmContext, openlibrary: OpenLibraryBatches | None, max_authors: int, now: float | None = None
) -> DemandPlan:
    plan = DemandPlan(calls_left=await calls_left(ctx))
    cap = min(max_authors, int(plan.calls_left / CALLS_PER_AUTHOR))
    asked = await ctx.demand.top_authors(limit=max(1, cap) * 2)
    wanted: dict[str, dict[str, Any]] = {
        a.member: {"name": a.name, "key": a.member, "misses": a.misses} for a in asked
    }
    # resolving ISBNs costs calls: none once the day's share is spent
    for person in await _isbn_authors(ctx, openlibrary, cap, plan) if cap > 0 else []:
        entry = wanted.setdefault(person["key"], {**person, "misses": 0.0})
        entry["misses"] += person["misses"]
        entry.setdefault("openlibrary_key", person.get("openlibrary_key"))
    ordered = sorted(wanted.values(), key=lambda a: (-a["misses"], a["key"]))
    plan.asked = len(ordered)
    keys = [a["key"] for a in ordered]
    raw = await HotCache._call(ctx.redis.mget([ctx.keys.processed(k) for k in keys])) if keys else []
    _, blocked = await ctx.reviews.decisions(keys)
    soft_ttl_s = ctx.settings.redis.soft_ttl_s
    moment = now or clock.now()
    for author, value in zip(ordered, raw, strict=True):
        record = json.loads(value) if value else None
        if author["key"] in blocked:
            plan.blocked += 1
            continue
        person = {"name": author["name"], "key": author["key"]}
        if author.get("openlibrary_key"):
            person["openlibrary_key"] = author["openlibrary_key"]
        if record is not None:
            if record.get("status") in NEGATIVE:
                plan.negative += 1
                continue
            if moment - (clock.parse_iso(record.get("last_warmed")) or 0.0) <= soft_ttl_s:
                plan.fresh += 1
                continue
            person["refresh"] = True  # stale: warm again, by the key stored with it
            if record.get("openlibrary_key"):
                person["openlibrary_key"] = record["openlibrary_key"]
        if len(plan.authors) >= cap:
            plan.over_budget += 1
            continue
        plan.authors.append(person)
    return plan


async def _isbn_authors(
    ctx: WarmContext, openlibrary: OpenLibraryBatches | None, limit: int, plan: DemandPlan
) -> list[dict[str, Any]]:
    """The first author of each most-missed ISBN that is still not cached, found with OpenLibrary's
    batched ISBN query (one call per 50 ISBNs)."""
    top = await ctx.demand.top_isbns(limit)
    if not top or openlibrary is None:
        return []
    cached = await HotCache._call(ctx.redis.mget([ctx.keys.isbn(a.member) for a in top]))
    missing = [a for a, value in zip(top, cached, strict=True) if value is None]
    plan.isbns_asked = len(missing)
    if not missing:
        return []
    stats = CallStats()
    found = await openlibrary.authors_of_isbns([a.member for a in missing], stats)
    plan.calls += sum(stats.calls.values())
    people = []
    for asked in missing:
        authors = found.get(asked.member)
        if not authors:
            plan.isbns_unknown += 1
            continue
        name, openlibrary_key = authors[0]
        key = author_key(name)
        if key and not is_junk(key):
            people.append(
                {"name": name, "key": key, "openlibrary_key": openlibrary_key, "misses": asked.misses}
            )
    return people
