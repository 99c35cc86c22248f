"""Prepare a CLI process to run flows on the embedded defaults.

Starts the local Redis/S3 (and a local Prefect server) when nothing else is configured, keeps
Prefect's files in the project, and quiets telemetry. Must run before Prefect is imported.
"""

from __future__ import annotations

import os

from bookwarm.runtime import load_settings
from bookwarm.services.local import LocalServices
from bookwarm.settings import Settings


def prepare_flow_runtime() -> Settings:
    services = LocalServices()
    os.environ.setdefault("PREFECT_HOME", str(services.home / "prefect"))
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    settings = load_settings(start_services=True, services=services)
    from blocks.loader import prefect_api_configured

    if not prefect_api_configured():
        state = services.up(with_prefect=True)
        os.environ["PREFECT_API_URL"] = state.env()["PREFECT_API_URL"]
    return settings
