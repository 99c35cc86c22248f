"""The job's view of its own flow run on the Prefect API: the watchdog's probe.

Plain HTTP with a short timeout and no retries, on purpose: the Prefect client retries for a long
time, while the watchdog must notice a lost API within its grace (bookwarm.warming.stop).
"""

from __future__ import annotations

import base64

import httpx
from prefect.settings import get_current_settings

from bookwarm.warming.stop import CANCELLING, RUNNING, Probe

TIMEOUT_S = 3.0


def _api() -> tuple[str, dict[str, str]]:
    api = get_current_settings().api
    headers = {}
    if api.key:
        headers["Authorization"] = f"Bearer {api.key.get_secret_value()}"
    elif api.auth_string:
        token = base64.b64encode(api.auth_string.get_secret_value().encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return str(api.url or "").rstrip("/"), headers


def flow_run_probe(flow_run_id: str) -> Probe:
    """Reads the run's state: ``cancelling`` once someone cancelled it; raises when the API fails."""
    url, headers = _api()

    async def probe() -> str:
        if not url:  # no API configured: nothing to watch
            return RUNNING
        async with httpx.AsyncClient(timeout=TIMEOUT_S, headers=headers) as client:
            response = await client.get(f"{url}/flow_runs/{flow_run_id}")
            response.raise_for_status()
        state = (response.json().get("state") or {}).get("type")
        return CANCELLING if state in ("CANCELLING", "CANCELLED") else RUNNING

    return probe


async def api_answers(timeout_s: float = TIMEOUT_S) -> bool:
    """True when the Prefect API's health endpoint answers (before a run starts)."""
    url, headers = _api()
    if not url:
        return True
    try:
        async with httpx.AsyncClient(timeout=timeout_s, headers=headers) as client:
            return (await client.get(f"{url}/health")).status_code == 200
    except httpx.HTTPError:
        return False
