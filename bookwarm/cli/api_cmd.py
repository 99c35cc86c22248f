"""`bookwarm api`: the HTTP read API on uvicorn, over the configured Redis and object store (the
local services when nothing is configured, started if need be, as the other commands do)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys

from bookwarm.errors import InputError

MAX_WORKERS = 64


def add_parser(sub: argparse._SubParsersAction) -> None:
    api = sub.add_parser("api", help="serve the HTTP read API (authors, ISBNs, titles) from the cache")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    api.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    api.add_argument(
        "--workers", type=int, default=1, help="processes, each with its own connections (default 1)"
    )
    api.add_argument(
        "--new-key",
        action="store_true",
        help="print a new API key and the digest to add to BOOKWARM_API_KEY_HASHES",
    )
    api.set_defaults(handler=run_api)


def run_api(args: argparse.Namespace) -> int:
    if args.new_key:
        from bookwarm.api.access import new_key

        key, digest = new_key()
        print(f"API key (give it to the client; bookwarm keeps only its digest): {key}")
        print(f"BOOKWARM_API_KEY_HASHES={digest}   (comma-separated with the others)")
        return 0
    if not 1 <= args.port <= 65535:
        raise InputError(f"--port must be between 1 and 65535, got {args.port}")
    if not 1 <= args.workers <= MAX_WORKERS:
        raise InputError(f"--workers must be between 1 and {MAX_WORKERS}, got {args.workers}")
    from bookwarm.runtime import load_settings
    from bookwarm.services.local import LocalServices
    from bookwarm.services.local import default_home as services_home

    blocks = _api_block()
    settings = load_settings(start_services=True, blocks=blocks)
    local = LocalServices().running()
    if local and "local services" in (settings.origins.get("redis.url"), settings.origins.get("s3.endpoint")):
        # each worker process resolves its settings again: the same local services, from the environment
        os.environ.update(
            {k: v for k, v in local.env().items() if k not in os.environ and k != "PREFECT_API_URL"}
        )
    if args.workers > 1:  # each process writes its samples here; /metrics in any of them adds them up
        metrics_dir = services_home() / "api-metrics" / str(os.getpid())
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    import uvicorn

    print(
        f"bookwarm API on http://{args.host}:{args.port} ({args.workers} process(es)); "
        f"docs at http://{args.host}:{args.port}/docs; Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        "bookwarm.api.app:from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
        server_header=False,
    )
    return 0


def _api_block() -> dict[str, dict[str, object]]:
    """The `bookwarm-api` block's values, when a Prefect API is configured and holds one. Every API
    process (uvicorn's workers resolve their settings again, from the environment) gets them
    through its environment: a block value wins over the variable, as everywhere in bookwarm."""
    from blocks.loader import load_block_values, prefect_api_configured
    from bookwarm.settings import ApiSettings, env_name

    if not prefect_api_configured():
        return {}
    try:
        values = load_block_values()
    except Exception as exc:  # the Prefect API is down: the environment alone, said in one line
        print(
            f"bookwarm: the API's block could not be read ({type(exc).__name__}); using the environment",
            file=sys.stderr,
        )
        return {}
    known = {f.name for f in dataclasses.fields(ApiSettings)}
    api = {k: v for k, v in values.get("api", {}).items() if v is not None and k in known}
    for field_name, value in api.items():
        raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        os.environ[env_name("api", field_name)] = str(raw).lower() if isinstance(raw, bool) else str(raw)
    return {"api": api} if api else {}
