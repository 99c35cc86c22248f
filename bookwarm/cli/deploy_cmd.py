"""`bookwarm deployments serve` and `bookwarm demo`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import quote

from bookwarm.cli.output import print_table

PREFECT_YAML = Path(__file__).resolve().parents[2] / "deployments" / "prefect.yaml"
# The project's sample library and fake catalog, wherever the command is run from (a relative
# default failed outside the project's folder).
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def add_parser(sub: argparse._SubParsersAction) -> None:
    deployments = sub.add_parser(
        "deployments",
        help="serve the deployments from this process, or deploy them to a work pool (deployments/prefect.yaml)",
    )
    deployments.add_argument("action", choices=("serve", "deploy"))
    deployments.set_defaults(handler=run_deployments)

    demo = sub.add_parser("demo", help="local services + fake providers, warm a library, show a lookup")
    demo.add_argument("file", nargs="?", default=str(EXAMPLES / "library.csv"))
    demo.add_argument("--catalog", type=Path, default=EXAMPLES / "catalog.json")
    demo.add_argument("--max-depth", type=int, default=2)
    demo.add_argument("--lookup", default="Neil Gaiman")
    demo.set_defaults(handler=run_demo)


def run_deployments(args: argparse.Namespace) -> int:
    from bookwarm.cli.runtime_env import prepare_flow_runtime

    settings = prepare_flow_runtime()
    import os

    if args.action == "deploy":
        import asyncio

        from deployments.pool import ensure_pool

        asyncio.run(ensure_pool("bookwarm"))  # the pool prefect.yaml names must exist first
        return _deploy()

    import asyncio

    from bookwarm.cli.workers_cmd import HEARTBEAT_S
    from tasks.prefect_api import ensure_crash_automation

    # Served runs beat as a worker's do (their processes inherit this), so a run whose serving
    # process dies is marked Crashed by the automation, and one alive is never mistaken for dead.
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", HEARTBEAT_S)
    asyncio.run(ensure_crash_automation(settings.orchestration.shard_lost_after_s))
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
    from bookwarm.services.local_api import LocalApi

    services = LocalServices().running()
    api = LocalApi().up()  # the front door a reading app calls, over what the demo warmed
    rows = [("read API", f"{api.url}  (docs: {api.url}/docs)")]
    rows.append(("try", f"curl -s {api.url}/v1/authors/{quote(args.lookup)} | head -c 300"))
    if services and services.prefect_port:
        rows.append(("Prefect UI", f"http://127.0.0.1:{services.prefect_port}"))
    rows.append(("stop everything", "make services-down"))
    print()
    print_table(("", ""), rows)
    return code


def _deploy() -> int:
    """`prefect deploy --all` over deployments/prefect.yaml, from the project root (the entrypoints
    and the runs' working directory are relative to it), against this command's Prefect API."""
    import subprocess

    from bookwarm.errors import ServiceError

    argv = [
        sys.executable,
        "-m",
        "prefect",
        "--no-prompt",
        "deploy",
        "--all",
        "--prefect-file",
        str(PREFECT_YAML),
    ]
    done = subprocess.run(argv, cwd=PREFECT_YAML.parents[1], capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        raise ServiceError(f"prefect deploy failed: {lines[-1] if lines else done.returncode}")
    print(
        f"deployed {PREFECT_YAML.relative_to(PREFECT_YAML.parents[1])}: {', '.join(deployment_names())} "
        "(work pool 'bookwarm')"
    )
    return 0


def deployment_names() -> list[str]:
    """The deployments prefect.yaml declares, in its order (the line above listed 7 of 9 by hand)."""
    import re

    return re.findall(r"^  - name: (\S+)$", PREFECT_YAML.read_text(encoding="utf-8"), re.M)
