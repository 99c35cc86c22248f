"""Prepare a CLI process to run flows on the embedded defaults.

Starts the local Redis/S3 (and a local Prefect server) when nothing else is configured, keeps
Prefect's files in the project, and quiets telemetry. Must run before Prefect is imported.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bookwarm.runtime import load_settings
from bookwarm.services.local import LocalServices
from bookwarm.settings import Settings

LOG_FILE = "logs/bookwarm.log"


def prepare_flow_runtime() -> Settings:
    services = LocalServices()
    os.environ.setdefault("PREFECT_HOME", str(services.home / "prefect"))
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # Prefect's own chatter, per task run
    # The job's own lines (parsed, levels, dead letters, summary) on its run page in the UI: the flow
    # run loggers at BOOKWARM_LOG_LEVEL, Prefect's task-run lines staying at WARNING (one per task
    # run would cost the server at scale).
    os.environ.setdefault(
        "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL",
        os.environ.get("BOOKWARM_LOG_LEVEL", "INFO").upper(),
    )
    if not os.environ.get("BOOKWARM_DEBUG"):
        # The terminal gets one line per error; warnings and tracebacks go to the run's logs in
        # Prefect (its API handler is untouched) and to a log file (log_to_file).
        # A level *name*: Prefect puts this value into logging's dictConfig, which refuses "100"
        # and then configures no handler at all, the API's included (the run pages had no logs).
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
        # Prefect's internal services (its events worker failing to reach a lost server) log to
        # stderr through their own handler: to the log file only, as the rest.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_DEBUG_LEVEL", "CRITICAL")
        # Prefect's log shipper writes "--- Error logging to API ---" and the error to stderr for each
        # batch a lost server refuses, after the job's one line; it honours the stdlib's switch for
        # handler errors, which production code turns off (the log file still has every line).
        logging.raiseExceptions = False
    from blocks.loader import prefect_api_configured

    configured = prefect_api_configured()
    if configured:
        require_prefect_api()  # before blocks are read from it
    settings = load_settings(start_services=True, services=services)
    if not configured:
        state = services.up(with_prefect=True)
        os.environ["PREFECT_API_URL"] = state.env()["PREFECT_API_URL"]
        # Prefect read its settings when first imported (above, without an API URL): read them again,
        # or its client would start a temporary server of its own instead of using this one.
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()
    return settings


def require_prefect_api() -> None:
    """One line, before any run starts, when the configured Prefect API does not answer."""
    import asyncio

    from bookwarm.errors import ServiceError
    from tasks.prefect_api import api_problem

    problem = asyncio.run(api_problem())
    if problem is None:
        return
    url = os.environ.get("PREFECT_API_URL", "the configured PREFECT_API_URL")
    if "database" in problem:
        raise ServiceError(
            f"the Prefect server at {url} {problem}: start its database (`bookwarm services up --postgres` "
            "restarts a local one)"
        )
    raise ServiceError(
        f"the Prefect server at {url} {problem}; start it (`prefect server start`), "
        "or unset PREFECT_API_URL to use the local one bookwarm starts"
    )


def log_to_file(home: Path | None = None) -> Path:
    """Send warnings and tracebacks (bookwarm's and Prefect's) to ``<home>/logs/bookwarm.log``, the
    file a one-line error points to. Called after Prefect has configured logging."""
    path = (home or LocalServices().home) / LOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s - %(message)s"))
    logging.getLogger().addHandler(handler)  # Prefect's run loggers propagate to the root
    logging.getLogger("prefect._internal").addHandler(handler)  # this one does not
    return path
