"""`bookwarm enrich [JOB_ID]`: drain pending enrichment within today's budgets, here."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    enrich = sub.add_parser(
        "enrich", help="enrich pending authors from Google Books and ISBNdb within today's quotas"
    )
    enrich.add_argument("job_id", nargs="?", help="only this job's authors (default: all pending)")
    enrich.add_argument("--max-authors", type=int, default=10_000)
    enrich.add_argument("--json", action="store_true")
    enrich.set_defaults(handler=run_enrich)


def run_enrich(args: argparse.Namespace) -> int:

    from bookwarm.cli.output import print_json, print_table
    from bookwarm.cli.runtime_env import prepare_flow_runtime
    from bookwarm.cli.warm_cmd import raise_flow_failure, run_to_state
    from bookwarm.errors import InputError

    if args.max_authors < 1:
        raise InputError(f"--max-authors must be at least 1, got {args.max_authors}")
    prepare_flow_runtime()
    from bookwarm.cli.runtime_env import log_to_file
    from flows.enrich import enrich

    log_to_file()

    state = run_to_state(enrich, job_id=args.job_id, max_authors=args.max_authors)
    if state.is_failed():
        raise_flow_failure(state)
    summary = state.result()
    if args.json:
        print_json(summary)
        return 0
    rows = [
        (p, v["done"], v["pending"], v.get("stopped") or "")
        for p, v in summary.items()
        if isinstance(v, dict)
    ]
    print_table(("provider", "enriched", "still pending", "stopped by"), rows)
    return 0
