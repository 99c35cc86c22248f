"""`bookwarm deployments serve` and `bookwarm demo`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bookwarm.cli.output import print_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    deployments = sub.add_parser(
        "deployments", help="serve the warm-library, warm-popular-authors, redrive and enrich deployments"
    )
    deployments.add_argument("action", choices=("serve",))
    deployments.set_defaults(handler=run_deployments)

    demo = sub.add_parser("demo", help="local services + fake providers, warm a library, show a lookup")
    demo.add_argument("file", nargs="?", default="examples/library.csv")
    demo.add_argument("--catalog", type=Path, default=Path("examples/catalog.json"))
    demo.add_argument("--max-depth", type=int, default=2)
    demo.add_argument("--lookup", default="Neil Gaiman")
    demo.set_defaults(handler=run_demo)


def run_deployments(args: argparse.Namespace) -> int:
    from bookwarm.cli.runtime_env import prepare_flow_runtime

    prepare_flow_runtime()
    import os

    print(
        f"serving deployments against {os.environ.get('PREFECT_API_URL', 'the configured Prefect API')}; Ctrl-C stops",
        file=sys.stderr,
    )
    from deployments.serve import main

    main()
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """Offline demo: fake providers at the real rate limits, unless real providers are configured."""
    import argparse as _argparse
    import os

    from bookwarm.cli import read_cmd, warm_cmd
    from bookwarm.providers.fake.runner import FakeProviders, provider_env

    if not os.environ.get("BOOKWARM_OPENLIBRARY_URL"):
        state = FakeProviders().up(args.catalog)
        os.environ.update(provider_env(state.port))
        print(
            f"# fake providers on port {state.port} (catalog {args.catalog}, real rate limits)",
            file=sys.stderr,
        )
    code = warm_cmd.run_warm(
        _argparse.Namespace(file=args.file, max_depth=args.max_depth, force=False, json=False)
    )
    print(f"\n$ bookwarm lookup author {args.lookup!r}")
    read_cmd.run_lookup(_argparse.Namespace(kind="author", value=args.lookup, json=False))
    from bookwarm.services.local import LocalServices

    state = LocalServices().running()
    if state and state.prefect_port:
        print()
        print_table(
            ("", ""),
            [
                ("Prefect UI", f"http://127.0.0.1:{state.prefect_port}"),
                ("stop everything", "make services-down"),
            ],
        )
    return code
