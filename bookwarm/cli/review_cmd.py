"""`bookwarm review [JOB_ID]` and `bookwarm review resolve NAME --openlibrary-key OL…A | --not-an-author`."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bookwarm.cli.output import print_json, print_table
from bookwarm.errors import InputError
from bookwarm.runtime import load_settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    review = sub.add_parser(
        "review",
        help="authors whose identity is uncertain (namesakes), with their candidates; `review resolve` answers",
        description="`bookwarm review [JOB_ID]` lists them (every open one, or a job's); "
        "`bookwarm review resolve NAME --openlibrary-key OL…A` pins one and warms it; "
        "`--not-an-author` puts the name on the blocklist.",
    )
    review.add_argument("target", nargs="?", help="a job id, or `resolve`")
    review.add_argument("name", nargs="?", help="with `resolve`: the author's name as the library wrote it")
    review.add_argument("--openlibrary-key", help="with `resolve`: the OpenLibrary author key, e.g. OL23919A")
    review.add_argument("--not-an-author", action="store_true", help="with `resolve`: block the name")
    review.add_argument(
        "--force",
        action="store_true",
        help="with `resolve`: a name on no review list (it is put there first; runs from the API cannot)",
    )
    review.add_argument("--json", action="store_true")
    review.set_defaults(handler=run_review)


def run_review(args: argparse.Namespace) -> int:
    if args.target == "resolve":
        return _resolve(args)
    if args.name or args.openlibrary_key or args.not_an_author:
        raise InputError("--openlibrary-key and --not-an-author go with `bookwarm review resolve NAME`")
    entries = asyncio.run(_entries(args.target))
    if args.json:
        print_json(entries)
        return 0
    if not entries:
        print("nothing to review" + (f" in job {args.target}" if args.target else ""))
        return 0
    print_table(("name", "candidates (OpenLibrary key, name, works)", "your books"), review_rows(entries))
    print("\nAnswer with `bookwarm review resolve NAME --openlibrary-key OL…A` (or `--not-an-author`).")
    return 0


def review_rows(entries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [
        (
            e["name"],
            "; ".join(f"{c['openlibrary_key']} {c['name']} ({c['works']})" for c in e["candidates"][:4]),
            "; ".join(e["books"])[:60],
        )
        for e in entries
    ]


async def _entries(job_id: str | None) -> list[dict[str, Any]]:
    from bookwarm.cache.redis_client import make_redis
    from bookwarm.keys import Keys
    from bookwarm.warming.review import ReviewStore

    settings = load_settings(start_services=False)
    client = make_redis(settings.redis.url, ride_out_s=settings.redis.ride_out_s)
    try:
        store = ReviewStore(client, Keys(settings.redis.key_prefix), settings.redis.job_ttl_s)
        return await (store.for_job(job_id) if job_id else store.open())
    finally:
        await client.aclose()


def _resolve(args: argparse.Namespace) -> int:
    if not args.name:
        raise InputError("`bookwarm review resolve NAME` needs the author's name")
    import re

    from bookwarm.cli.warm_cmd import run_flow
    from flows.params import checked_name

    checked_name(args.name)  # bad input fails here, in one line, before any server starts
    if args.openlibrary_key and not re.fullmatch(r"OL[0-9]{1,12}A", args.openlibrary_key):
        raise InputError("an OpenLibrary author key looks like OL23919A")
    if args.force:
        asyncio.run(_put_on_review_list(args.name))
    return run_flow(
        "resolve_review",
        args.json,
        name=args.name,
        openlibrary_key=args.openlibrary_key,
        not_an_author=args.not_an_author,
    )


async def _put_on_review_list(name: str) -> None:
    from bookwarm.cache.redis_client import make_redis
    from bookwarm.keys import Keys
    from bookwarm.parsing.names import parse_cell
    from bookwarm.warming.review import ReviewStore
    from flows.params import checked_name

    people = parse_cell(checked_name(name))
    if len(people) != 1:
        raise InputError("give one author's name")
    settings = load_settings(start_services=False)
    client = make_redis(settings.redis.url, ride_out_s=settings.redis.ride_out_s)
    try:
        store = ReviewStore(client, Keys(settings.redis.key_prefix), settings.redis.job_ttl_s)
        await store.add_by_operator(people[0].name, people[0].key)
    finally:
        await client.aclose()
