"""Runs of bookwarm's deployments created through Prefect's REST API (plain httpx: the API's
processes never import Prefect), so the Prefect UI stays the job-status and dead-letter view."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any
from urllib.parse import quote

import httpx

from bookwarm.errors import ServiceError
from bookwarm.tls import tls_context

TIMEOUT_S = 10.0
# Prefect's server answers 503 while its SQLite database is busy (its own client tries again, with
# backoff): so do the triggers, for 503 and 429 only (the server said "not now", nothing was made),
# never for a gateway's 502/504 after which a run may exist.
NOT_NOW = (429, 503)
ATTEMPTS = 5
BACKOFF_S = 0.5
PATIENCE_S = 15.0


def _api() -> tuple[str, dict[str, str]]:
    url = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    if not url:
        raise ServiceError("no Prefect API is configured (PREFECT_API_URL): the triggers need one")
    key = os.environ.get("PREFECT_API_KEY")
    return url, ({"Authorization": f"Bearer {key}"} if key else {})


async def create_run(deployment: str, parameters: dict[str, Any]) -> dict[str, str]:
    """{id, name, ui}: a new run of ``deployment`` ("flow/deployment"), or ServiceError in one line."""
    url, headers = _api()
    flow, name = deployment.split("/", 1)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S, headers=headers, verify=tls_context()) as client:
            found = await _patiently(client, "GET", f"{url}/deployments/name/{quote(flow)}/{quote(name)}")
            if found.status_code == 404:
                raise ServiceError(
                    f"no deployment {deployment} on the Prefect server: `bookwarm deployments deploy` "
                    "(a work pool) or `bookwarm deployments serve`"
                )
            found.raise_for_status()
            made = await _patiently(
                client,
                "POST",
                f"{url}/deployments/{found.json()['id']}/create_flow_run",
                json={"parameters": parameters},
            )
            made.raise_for_status()
    except httpx.HTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        raise ServiceError(
            f"the Prefect API failed to create the run ({f'HTTP {status}' if status else type(exc).__name__})"
        ) from None
    run = made.json()
    ui = url.removesuffix("/api")
    return {"id": run["id"], "name": run["name"], "ui": f"{ui}/runs/flow-run/{run['id']}"}


async def _patiently(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """The request, again after 0.5, 1, 2, 4 s while the server answers 503 or 429, within 15 s."""
    deadline = time.monotonic() + PATIENCE_S
    for attempt in range(ATTEMPTS):
        response = await client.request(method, url, **kwargs)
        delay = BACKOFF_S * 2**attempt
        if (
            response.status_code not in NOT_NOW
            or attempt == ATTEMPTS - 1
            or time.monotonic() + delay > deadline
        ):
            return response
        await asyncio.sleep(delay)
    return response
