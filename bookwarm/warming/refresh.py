"""Refresh from OpenLibrary's change feed: which cached authors changed since the checkpoint.

The feed is read day by day from the day after the checkpoint (the last UTC day read to the end and
warmed) to today. What changed is mapped to the authors bookwarm holds: an edited author by its key,
a work by the index written with each bibliography (``olindex:works``), a work the index lacks (a
new one) or an edition with one batched search for their authors, and ``merge-authors`` to the
surviving author, under which the duplicate's bookwarm entry is warmed again (so it never serves a
dead key). Only authors still held (their processed marker alive) are warmed; a change to anyone
else costs no warming call.

The checkpoint moves only past days read completely and warmed: a feed error, or a run killed
before its job completed, leaves it where it was, and the next run reads those days again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bookwarm import clock
from bookwarm.cache.hot import HotCache, text
from bookwarm.errors import InputError, ProviderError
from bookwarm.providers.http import CallStats
from bookwarm.providers.openlibrary_batch import OpenLibraryBatches
from bookwarm.providers.openlibrary_changes import ChangeFeed, merge_of, touched
from bookwarm.warming.context import WarmContext

SEEN_TTL_S = 3 * 86400
MAX_DAYS_BACK = 31  # a read of the feed starts at most this many days ago (a dump covers older ones)


@dataclass
class RefreshPlan:
    authors: list[dict[str, Any]] = field(default_factory=list)
    start: str = ""  # the first day read: every day before it was done by an earlier run
    days_read: list[str] = field(default_factory=list)  # read to the end, before today
    today: str = ""
    today_newest: int = 0  # today's newest changeset id acted on
    feed_error: str | None = None  # the day that failed, and why: read again next time
    changesets: int = 0
    truncated: list[str] = field(default_factory=list)
    merges: int = 0
    ignored: int = 0  # OpenLibrary authors touched that bookwarm does not hold
    calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "authors"} | {"to_warm": len(self.authors)}


def today_utc() -> date:
    return datetime.fromtimestamp(clock.now(), UTC).date()


async def plan_refresh(
    ctx: WarmContext, feed: ChangeFeed, openlibrary: OpenLibraryBatches, since: date | None, today: date
) -> RefreshPlan:
    plan = RefreshPlan(today=today.isoformat())
    stats = CallStats()
    checkpoint = await HotCache._call(ctx.redis.get(ctx.keys.refresh_checkpoint()))
    start = since or (date.fromisoformat(text(checkpoint)) + timedelta(days=1) if checkpoint else today)
    if (today - start).days > MAX_DAYS_BACK:
        if since is not None:
            raise InputError(
                f"the change feed is read at most {MAX_DAYS_BACK} days back, not from {start}: "
                "warm again (or load a dump) for older changes"
            )
        oldest = today - timedelta(
            days=MAX_DAYS_BACK
        )  # refresh stopped for long: the soft TTL covers the gap
        plan.truncated.append(f"{start}..{oldest - timedelta(days=1)} (more than {MAX_DAYS_BACK} days back)")
        start = oldest
    plan.start = start.isoformat()
    edited: set[str] = set()
    works: set[str] = set()
    editions: set[str] = set()
    merges: dict[str, str] = {}  # duplicate -> master
    day = start
    while day <= today:
        after = int(await HotCache._call(ctx.redis.get(ctx.keys.refresh_seen(day.isoformat()))) or 0)
        try:
            read = await feed.day(day, stats, after_id=after)
        except ProviderError as exc:
            plan.feed_error = f"{day}: {exc}"
            break
        plan.changesets += len(read.changesets)
        plan.truncated += [f"{day} {kind}" for kind in read.truncated]
        for changeset in read.changesets.values():
            a, w, e = touched(changeset)
            edited |= a
            works |= w
            editions |= e
            if (merge := merge_of(changeset)) is not None:
                master, duplicates = merge
                merges.update(dict.fromkeys(duplicates, master))
        if day < today:
            plan.days_read.append(day.isoformat())
        else:
            plan.today_newest = max(after, read.newest_id)
        day += timedelta(days=1)
    plan.merges = len(merges)
    ol_authors = edited | set(merges.values()) | await _authors_of(ctx, openlibrary, works, editions, stats)
    await _map_to_held(ctx, plan, ol_authors, merges)
    plan.calls = sum(stats.calls.values())
    return plan


async def _authors_of(
    ctx: WarmContext, openlibrary: OpenLibraryBatches, works: set[str], editions: set[str], stats: CallStats
) -> set[str]:
    """OpenLibrary author keys of the changed works (from the index where it has them) and editions."""
    found: set[str] = set()
    ordered = sorted(works)
    indexed = await HotCache._call(ctx.redis.hmget(ctx.keys.ol_works(), ordered)) if ordered else []
    unknown = []
    for work, value in zip(ordered, indexed, strict=True):
        if value:
            found |= set(text(value).split(","))
        else:
            unknown.append(work)
    if unknown or editions:
        for authors in (await openlibrary.authors_of_works(unknown, sorted(editions), stats)).values():
            found |= set(authors)
    return found


async def _map_to_held(
    ctx: WarmContext, plan: RefreshPlan, ol_authors: set[str], merges: dict[str, str]
) -> None:
    """The held bookwarm authors behind ``ol_authors`` (and the duplicates of merges), each once, to
    be warmed by their OpenLibrary key: the master's, for a merged duplicate."""
    ordered = sorted(ol_authors | set(merges))
    values = await HotCache._call(ctx.redis.hmget(ctx.keys.ol_authors(), ordered)) if ordered else []
    people: dict[str, dict[str, Any]] = {}
    indexed_as: dict[str, list[str]] = {}  # bookwarm key -> the OpenLibrary keys that led to it
    for ol_key, value in zip(ordered, values, strict=True):
        if not value:
            plan.ignored += 1
            continue
        held = json.loads(value)
        indexed_as.setdefault(held["key"], []).append(ol_key)
        target = merges.get(ol_key, ol_key)
        people[held["key"]] = {
            "name": held["name"],
            "key": held["key"],
            "openlibrary_key": target,
            "refresh": True,
        }
    keys = sorted(people)
    markers = await ctx.hot.processed_many(keys)
    pins, _ = await ctx.reviews.decisions(keys)
    dropped = list(merges)  # a duplicate's key is dead for good
    for key, marker in zip(keys, markers, strict=True):
        if marker is None:  # no longer held: the index entry is dropped, nothing is warmed
            dropped += indexed_as[key]
            plan.ignored += 1
            continue
        person = people[key]
        if pins.get(key) in merges:  # the operator pinned the duplicate: the pin follows the merge
            await ctx.reviews.pin(key, person["openlibrary_key"])
        plan.authors.append(person)
    if dropped:
        await HotCache._call(ctx.redis.hdel(ctx.keys.ol_authors(), *dropped))


async def hand_over_from_dump(ctx: WarmContext, newest: date) -> bool:
    """After a dump load: the change feed takes over on the dump's newest day (read again, as the
    dump may hold only part of it). Only when no refresh has run: an earlier checkpoint means the
    feed already covers what the dump does, for every author held. True when it was set."""
    day_before = (newest - timedelta(days=1)).isoformat()
    return bool(await HotCache._call(ctx.redis.set(ctx.keys.refresh_checkpoint(), day_before, nx=True)))


async def advance_checkpoint(ctx: WarmContext, plan: dict[str, Any]) -> None:
    """After the job that warmed them completed: past the days read to the end, and today's newest
    changeset acted on. A failed day was not read to the end: nothing moves past it."""
    pipe = ctx.redis.pipeline(transaction=True)
    done = (
        plan["days_read"][-1]
        if plan["days_read"]
        else (date.fromisoformat(plan["start"]) - timedelta(days=1)).isoformat()
    )
    pipe.set(ctx.keys.refresh_checkpoint(), done)
    if plan["feed_error"] is None and plan["today_newest"]:
        pipe.set(ctx.keys.refresh_seen(plan["today"]), plan["today_newest"], ex=SEEN_TTL_S)
    await HotCache._call(pipe.execute())
