"""`bookwarm config [--register-blocks]`: each setting's value and where it came from."""

from __future__ import annotations

import argparse

from bookwarm.cli.output import print_table
from bookwarm.runtime import load_settings
from bookwarm.settings import describe


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show settings and their origin (block, env, local services, default)")
    p.add_argument(
        "--register-blocks",
        action="store_true",
        help="register bookwarm's block types and save blocks from the current settings (needs PREFECT_API_URL)",
    )
    p.add_argument("--overwrite", action="store_true", help="with --register-blocks: replace existing blocks")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from blocks.loader import load_block_values

    settings = load_settings(start_services=False, blocks=load_block_values())
    if args.register_blocks:
        from blocks.register import register_blocks

        saved = register_blocks(settings, overwrite=args.overwrite)
        print("saved blocks: " + (", ".join(saved) if saved else "none (all exist; use --overwrite)"))
        return 0
    print_table(("setting", "environment variable", "value", "origin"), describe(settings))
    return 0
