"""`bookwarm lookup author|isbn ...` and `bookwarm status JOB_ID`: the read path, no Prefect needed."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bookwarm.cli.output import print_json, print_table
from bookwarm.errors import InputError
from bookwarm.runtime import load_settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    lookup = sub.add_parser("lookup", help="read an author or an ISBN from the cache (Redis, then S3)")
    lookup.add_argument("kind", choices=("author", "isbn"))
    lookup.add_argument("value")
    lookup.add_argument("--json", action="store_true")
    lookup.set_defaults(handler=run_lookup)

    status = sub.add_parser("status", help="a job's counts and dead letters")
    status.add_argument("job_id")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=run_status)


async def lookup(
    settings: Any, kind: str, value: str
) -> tuple[dict[str, Any] | None, str, dict[str, Any] | None, bool]:
    """(bibliography, tier, matched ISBN entry, stale), a miss or stale hit recorded as demand.
    Shared by the CLI and the contract tests."""
    from bookwarm.cache.reading import read_author, read_isbn
    from bookwarm.warming.context import WarmContext

    async with WarmContext(settings, with_providers=False) as ctx:
        if kind == "author":
            found = await read_author(ctx.cache, value)
            return found.read.value, found.read.tier, None, found.read.stale
        isbn = await read_isbn(ctx.cache, value.replace("-", "").strip())
        if isbn.entry is None or isbn.author is None:
            return None, isbn.tier, None, False
        return isbn.author.value, isbn.tier, isbn.entry, isbn.author.stale


def run_lookup(args: argparse.Namespace) -> int:
    settings = load_settings(start_services=False)
    bibliography, tier, entry, stale = asyncio.run(lookup(settings, args.kind, args.value))
    if bibliography is None:
        raise InputError(
            f"{args.kind} {args.value!r} is not in the cache (miss in Redis and the object store; "
            "recorded as demand: the next `bookwarm warm-demand` warms it)"
        )
    if args.json:
        print_json(
            {**bibliography, "tier": tier, "stale": stale, **({"match": entry["work"]} if entry else {})}
        )
        return 0
    author = bibliography["author"]
    print(
        f"{author['name']}  (key {author['key']}, OpenLibrary {author.get('openlibrary_key')})  from {tier} tier"
    )
    print(
        f"status {bibliography['status']}, complete {bibliography['complete']}, {bibliography['works_count']} works"
        + (
            f"; stale (fetched {bibliography.get('warmed_at') or bibliography.get('fetched_at')}, refreshed by the next warm-demand)"
            if stale
            else ""
        )
    )
    if entry:
        print(f"ISBN {args.value}: {entry['work']['title']}")
    print_table(
        ("year", "title"),
        [(w.get("first_publish_year") or "", w["title"][:70]) for w in bibliography["works"]],
        limit=15,
    )
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Job records live in Redis alone: the status works while the object store is down."""
    from bookwarm.cache.redis_client import make_redis
    from bookwarm.warming.jobs import summary_rows
    from bookwarm.warming.status import job_status

    settings = load_settings(start_services=False)

    async def read() -> dict[str, Any] | None:
        client = make_redis(settings.redis.url, ride_out_s=settings.redis.ride_out_s)
        try:
            return await job_status(client, settings.redis, args.job_id)
        finally:
            await client.aclose()

    data = asyncio.run(read())
    if data is None:
        raise InputError(
            f"no job {args.job_id} (job records are kept {settings.redis.job_ttl_s // 86400} days)"
        )
    dead, review = data["dead_letters"], data["review"]
    if args.json:
        print_json(data)
        return 0
    print_table(("", ""), summary_rows(data))
    if dead:
        print(f"\n{len(dead)} dead letters (re-drive with `bookwarm redrive {args.job_id}`):")
        print_table(("depth", "name", "reason"), [(d["depth"], d["name"], d["reason"][:80]) for d in dead])
    if review:
        from bookwarm.cli.review_cmd import review_rows

        print(
            f"\n{len(review)} authors to review (answer with `bookwarm review resolve NAME --openlibrary-key OL…A`):"
        )
        print_table(("name", "candidates (OpenLibrary key, name, works)", "your books"), review_rows(review))
    return 0
