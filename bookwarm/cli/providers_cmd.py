"""`bookwarm providers serve|fetch`: the fake provider server, and one author's merged bibliography."""

from __future__ import annotations

import argparse
import asyncio
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from bookwarm.cli.output import print_json, print_table
from bookwarm.runtime import load_settings

if TYPE_CHECKING:
    from bookwarm.providers.models import Bibliography


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"  # whatever the working folder


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("providers", help="fake provider server; fetch one author's bibliography")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    serve = actions.add_parser("serve", help="serve OpenLibrary/Google Books/ISBNdb endpoints from a catalog")
    serve.add_argument("--catalog", type=Path, default=EXAMPLES / "catalog.json")
    serve.add_argument("--port", type=int, default=0, help="0 = a free port")
    serve.add_argument("--latency-ms", type=float, default=0.0)
    serve.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 500")
    serve.add_argument("--rate-429", type=float, default=0.0, help="share of requests answered 429")
    serve.add_argument(
        "--no-limits", action="store_true", help="do not enforce the providers' real rate limits"
    )
    serve.set_defaults(handler=run_serve)

    fetch = actions.add_parser("fetch", help="fetch one author's merged bibliography, without caching it")
    fetch.add_argument("name")
    fetch.add_argument("--json", action="store_true")
    fetch.add_argument(
        "--core-only", action="store_true", help="drop study guides, box sets, other-language copies"
    )
    fetch.set_defaults(handler=run_fetch)


def run_serve(args: argparse.Namespace) -> int:
    from bookwarm.providers.fake.catalog import load_catalog
    from bookwarm.providers.fake.runner import faults_from_options, provider_env, serve_forever
    from bookwarm.services.process import free_port

    load_catalog(args.catalog)  # validate before announcing anything
    port = args.port or free_port()
    faults = faults_from_options(
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        rate_429=args.rate_429,
        real_limits=not args.no_limits,
    )
    print(f"# fake providers on http://127.0.0.1:{port} (catalog {args.catalog}); Ctrl-C stops", flush=True)
    for name, value in provider_env(port).items():
        print(f"export {name}={shlex.quote(value)}", flush=True)
    serve_forever(args.catalog, port, faults)
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from bookwarm.providers.session import ProviderSession

    settings = load_settings(start_services=True)

    async def go() -> Bibliography:
        async with ProviderSession(settings, core_only=args.core_only) as session:
            return await session.fetch(args.name)

    bibliography = asyncio.run(go())
    data = bibliography.to_dict()
    if args.json:
        print_json(data)
        return 0
    author = data["author"]
    print(
        f"author:     {author['name']} (key {author['key']}, OpenLibrary {author['openlibrary_key']}, "
        f"confidence {author['confidence']})"
    )
    print(
        f"status:     {data['status']}{' (needs review)' if author['needs_review'] else ''}; complete: {data['complete']}"
    )
    print(f"works:      {data['works_count']}")
    print(f"calls:      {data['calls']}")
    for provider, info in data["sources"].items():
        print(
            f"  {provider:13} ok={info['ok']} works={info['works']} {info['error'] or info['skipped'] or ''}"
        )
    print()
    print_table(
        ("year", "title", "co-authors"),
        [
            (
                w["first_publish_year"] or "",
                w["title"][:60],
                ", ".join(a["name"] for a in w["authors"] if a["key"] != author["key"]),
            )
            for w in data["works"]
        ],
        limit=20,
    )
    return 0
