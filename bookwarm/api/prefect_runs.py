"""Runs of bookwarm's deployments created through Prefect's REST API (plain httpx: the API's
processes never import Prefect), so the Prefect UI stays the job-status and dead-letter view."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import httpx

from bookwarm.errors import ServiceError

TIMEOUT_S = 10.0


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
        async with httpx.AsyncClient(timeout=TIMEOUT_S, headers=headers) as client:
            found = await client.get(f"{url}/deployments/name/{quote(flow)}/{quote(name)}")
            if found.status_code == 404:
                raise ServiceError(
                    f"no deployment {deployment} on the Prefect server: `bookwarm deployments deploy` "
                    "(a work pool) or `bookwarm deployments serve`"
                )
            found.raise_for_status()
            made = await client.post(
                f"{url}/deployments/{found.json()['id']}/create_flow_run", json={"parameters": parameters}
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
