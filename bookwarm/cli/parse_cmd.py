"""`bookwarm parse FILE [--json]`: what bookwarm reads from a library export, without warming."""

from __future__ import annotations

import argparse
import os

from bookwarm.cli.output import print_json, print_table
from bookwarm.parsing.ingest import parse_library
from bookwarm.parsing.llm import gemini_fallback
from bookwarm.settings import resolve


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parse", help="parse a library export and show its authors")
    p.add_argument("file", help="CSV/TSV export (Goodreads, StoryGraph, LibraryThing, ... or generic)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--all-authors", action="store_true", help="show every author, not the first 25")
    p.add_argument("--llm", action="store_true", help="parse with the Gemini fallback even if a rule matches")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = resolve(os.environ)
    parsed = parse_library(
        args.file,
        max_bytes=int(settings.ingest.max_upload_mb * 1024 * 1024),
        warm_roles=settings.warm_roles,
        fallback=gemini_fallback(settings.gemini),
        force_fallback=args.llm,
    )
    if args.json:
        print_json(parsed.to_summary())
        return 0
    print(f"format:   {parsed.format} ({parsed.encoding}, delimiter {parsed.delimiter!r})")
    print(f"rows:     {parsed.rows}")
    print(f"authors:  {len(parsed.authors)} unique")
    print(f"isbns:    {len(parsed.isbns)} unique ISBN-13")
    print(f"rejected: {len(parsed.rejected)} rows")
    print()
    print_table(
        ("name", "key", "books"),
        [(a.name, a.key, a.books) for a in parsed.authors],
        limit=None if args.all_authors else 25,
    )
    if parsed.rejected:
        print()
        print_table(("row", "reason"), [(r.row, r.reason) for r in parsed.rejected], limit=10)
    return 0
