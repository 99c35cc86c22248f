"""`bookwarm dump load DIR_OR_FILES… --authors FILE`: warm authors from OpenLibrary's dumps."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

PLAIN_EVERY_S = 2.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    dump = sub.add_parser("dump", help="warm authors from OpenLibrary's monthly data dumps, without its API")
    verbs = dump.add_subparsers(dest="dump_command", required=True, metavar="VERB")
    load = verbs.add_parser(
        "load", help="read the authors and works dumps and write the wanted authors to both cache tiers"
    )
    load.add_argument(
        "paths", nargs="+", help="the dump files (ol_dump_*.txt.gz), or a directory holding them"
    )
    load.add_argument("--authors", metavar="FILE", help="the authors to load: a text file, one name a line")
    load.add_argument(
        "--name", action="append", default=[], metavar="NAME", help="an author to load (repeatable)"
    )
    load.add_argument(
        "--library", metavar="EXPORT", help="the authors of a library export (its ISBNs settle namesakes)"
    )
    load.add_argument(
        "--all",
        dest="all_authors",
        action="store_true",
        help="every author of the dumps with at least one work",
    )
    load.add_argument(
        "--chunk-size",
        type=int,
        default=1_000,
        metavar="N",
        help="authors a write-dump-chunk task run writes (10-10000)",
    )
    load.add_argument("--force", action="store_true", help="write authors this dump already wrote, again")
    load.add_argument("--json", action="store_true", help="print the summary as JSON")
    load.set_defaults(handler=run_dump_load)


def run_dump_load(args: argparse.Namespace) -> int:
    from bookwarm.cli.output import print_json, print_table
    from bookwarm.dumps.files import find_files
    from bookwarm.errors import InputError

    paths = [Path(p).resolve() for p in args.paths]
    find_files(paths)  # a missing or misnamed file fails here, before any server starts
    authors_file = _existing_file(args.authors, "authors file")
    library = _existing_file(args.library, "library export")
    if not 10 <= args.chunk_size <= 10_000:
        raise InputError(f"--chunk-size must be between 10 and 10000, got {args.chunk_size}")
    if args.all_authors and (authors_file or library or args.name):
        raise InputError("--all loads every author: give no --authors, --library or --name with it")
    if authors_file is None and library is None and not args.name and not args.all_authors:
        raise InputError(
            "say which authors to load: --authors FILE (one name a line), --library EXPORT, --name NAME or --all"
        )
    # A run reads local files only under BOOKWARM_SOURCE_ROOTS; the files named here are the user's own.
    named = [p if p.is_dir() else p.parent for p in paths] + [f.parent for f in (authors_file, library) if f]
    roots = [r for r in os.environ.get("BOOKWARM_SOURCE_ROOTS", "").split(",") if r.strip()]
    os.environ["BOOKWARM_SOURCE_ROOTS"] = ",".join(dict.fromkeys([*roots, *map(str, named)]))

    from bookwarm.cli.runtime_env import log_to_file, prepare_flow_runtime
    from bookwarm.cli.warm_cmd import raise_flow_failure, run_to_state
    from bookwarm.dumps.progress import subscribe

    prepare_flow_runtime()
    from flows.warm_from_dump import warm_from_dump

    log_to_file()
    unsubscribe = subscribe(_ProgressLines())
    try:
        state = run_to_state(
            warm_from_dump,
            paths=[str(p) for p in paths],
            names=args.name or None,
            authors_file=str(authors_file) if authors_file else None,
            library=str(library) if library else None,
            all_authors=args.all_authors,
            chunk_size=args.chunk_size,
            force=args.force,
        )
    finally:
        unsubscribe()
    if state.is_failed():
        raise_flow_failure(state)
    summary = state.result()
    if args.json:
        print_json(summary)
        return 0
    rows = summary["rows"]
    print(
        f"dump as of {summary['as_of']}: {summary['authors']:,} authors; skipped rows: "
        f"{rows['wrong_columns']:,} of another shape, {rows['malformed_json']:,} malformed, "
        f"{rows['works_without_authors']:,} works without authors"
    )
    print_table(("status", "authors"), sorted(summary["written"].items()))
    if summary["failed"]:
        print(
            f"{summary['failed']} authors not written (see the log); run the same command again to write them"
        )
        return 1
    return 0


def _existing_file(value: str | None, what: str) -> Path | None:
    from bookwarm.errors import InputError

    if value is None:
        return None
    path = Path(value).resolve()
    if not path.is_file():
        raise InputError(f"no such {what}: {path}")
    return path


class _ProgressLines:
    """A line on stderr when a stage starts or ends, and every few seconds between."""

    def __init__(self) -> None:
        self.last_stage = ""
        self.last_at = 0.0

    def __call__(self, progress: object) -> None:
        from bookwarm.dumps.progress import DumpProgress

        assert isinstance(progress, DumpProgress)
        now = time.monotonic()
        if progress.stage == self.last_stage and progress.share < 1 and now - self.last_at < PLAIN_EVERY_S:
            return
        self.last_stage, self.last_at = progress.stage, now
        print(progress.line(), file=sys.stderr, flush=True)
