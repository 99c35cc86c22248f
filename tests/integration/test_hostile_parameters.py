"""Hostile deployment parameters are refused at creation (409 from the schema), from the REST API
of served deployments, and leave no trace: not in Prefect's flow runs, logs or events, not in Redis.

Real parts: the session's Prefect API and Redis, `bookwarm deployments serve` in a process of its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx

from bookwarm.cache.redis_client import make_redis
from tests.conftest import PROJECT

MARK = "Hzq7Mark"  # in every hostile value: what is searched for afterwards
HOSTILE = [
    ("resolve-review/resolve-review", {"name": MARK + "a" * 100_000, "openlibrary_key": "OL1A"}),
    (
        "resolve-review/resolve-review",
        {"name": f"Neil\nGaiman\r\n=cmd|' /C calc'!A0{MARK}", "openlibrary_key": "OL1A"},
    ),
    ("resolve-review/resolve-review", {"name": f"={MARK}(1)", "not_an_author": True}),
    ("resolve-review/resolve-review", {"name": "John Smith", "openlibrary_key": f"../{MARK}"}),
    ("redrive/redrive", {"job_id": MARK + "x" * 10_000}),
    ("resume/resume", {"job_id": MARK + "x" * 10_000}),
    ("enrich/enrich", {"job_id": MARK}),
    ("warm-popular-authors/warm-popular-authors", {"names": [f"{MARK} {i}" for i in range(5_000)]}),
]


def _serve(env: dict[str, str], log_path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bookwarm", "deployments", "serve"],
        env=env,
        cwd=PROJECT,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_hostile_parameters_get_409_and_leave_no_trace(flow_env, tmp_path):
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value().rstrip("/")
    env = {**os.environ, "PREFECT_API_URL": api, "BOOKWARM_HOME": str(tmp_path / "h")}
    serve = _serve(env, tmp_path / "serve.log")
    try:
        with httpx.Client(base_url=api, timeout=30) as client:
            ids: dict[str, str] = {}
            deadline = time.monotonic() + 120
            for name in {d for d, _ in HOSTILE}:
                while (found := client.get(f"/deployments/name/{name}")).status_code != 200:
                    assert serve.poll() is None and time.monotonic() < deadline, (
                        tmp_path / "serve.log"
                    ).read_text()[-3000:]
                    time.sleep(0.5)
                ids[name] = found.json()["id"]
            for name, parameters in HOSTILE:
                answer = client.post(
                    f"/deployments/{ids[name]}/create_flow_run", json={"parameters": parameters}
                )
                assert answer.status_code == 409, (name, answer.status_code, answer.text[:300])
            runs = client.post("/flow_runs/filter", json={"limit": 200}).text
            logs = client.post("/logs/filter", json={"limit": 200}).text
            events = client.post("/events/filter", json={"limit": 50}).text
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)
    assert MARK not in runs and MARK not in logs and MARK not in events

    async def redis_keys() -> list[bytes]:
        client = make_redis(flow_env.redis.url)
        try:
            return [k async for k in client.scan_iter(match=f"*{MARK}*")]
        finally:
            await client.aclose()

    assert asyncio.run(redis_keys()) == []
