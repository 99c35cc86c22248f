"""Settings for a command run: blocks, environment, and the embedded local services as fallback.

Kept apart from ``settings`` because it has side effects (it may start servers) and because it
is where the Prefect block loader is plugged in by the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from bookwarm.services.local import LocalServices
from bookwarm.settings import Settings, resolve


def load_settings(
    *,
    start_services: bool,
    blocks: Mapping[str, Mapping[str, Any]] | None = None,
    services: LocalServices | None = None,
) -> Settings:
    """Resolve settings; with ``start_services``, start local Redis/S3 when neither is configured."""
    first = resolve(os.environ, blocks)
    local_env: dict[str, str] = {}
    needs_local = first.redis.url in (None, "") or first.s3.endpoint in (None, "")
    if needs_local:
        services = services or LocalServices()
        state = services.up() if start_services else services.running()
        if state:
            local_env = state.env()
    return resolve(os.environ, blocks, local_env) if local_env else first
