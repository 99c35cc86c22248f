"""Hostile sources given to the library flow (as a deployment run's `source` would be) are refused
before they are read, and no secret reaches Prefect's database, Redis or the object store."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import pytest

from bookwarm.cache.objectstore import ObjectStore
from bookwarm.cache.redis_client import make_redis
from flows.warm_library import warm_library

SECRET = "FAKE-SECRET-b41d9e77"


@pytest.fixture
def hostile_sources(flow_env, tmp_path):
    """Sources a hostile caller might send; `tmp_path` is under BOOKWARM_SOURCE_ROOTS, `outside` is not."""
    outside = Path(tempfile.mkdtemp(prefix="bookwarm-outside-"))
    secret_file = outside / "credentials.csv"
    secret_file.write_text(f"aws_secret_access_key={SECRET},region\n1,2\n", encoding="utf-8")
    os.symlink(secret_file, tmp_path / "innocent.csv")
    store = ObjectStore(flow_env.s3)
    store.ensure_bucket()
    store.put_bytes_sync("private/credentials.csv", secret_file.read_bytes(), "text/csv")
    store.close()
    return {
        "/etc/passwd": "/etc/passwd",
        "secret file": str(secret_file),
        "dot-dot": f"{tmp_path}/../../../..{secret_file}",
        "symlink out of a root": str(tmp_path / "innocent.csv"),
        "other prefix": f"s3://{flow_env.s3.bucket}/private/credentials.csv",
        "other bucket": "s3://someone-elses-bucket/uploads/credentials.csv",
        "bad base64": "SGVsbG8=X",
        # Over Prefect's 512 KB parameter limit the API itself refuses the run (422); just under
        # it, our own limit refuses it with the way out (tests/unit/test_sources.py).
    }


async def test_hostile_sources_are_refused_and_nothing_leaks(flow_env, hostile_sources, services):
    started = time.time()
    messages = {}
    for case, source in hostile_sources.items():
        state = await warm_library(source, max_depth=1, return_state=True)
        assert state.is_failed(), case
        messages[case] = state.message or ""
    for case, message in messages.items():
        assert SECRET not in message and "root:" not in message, (case, message)
        assert "\n" not in message.strip(), case
    assert "refused" in messages["secret file"] and "refused" in messages["other bucket"]
    assert "not valid base64" in messages["bad base64"]

    found = await _everything_stored(flow_env, started, refused=len(hostile_sources))
    for secret in (SECRET, "root:x:0:0", services.secret_key):
        for place, text in found.items():
            assert secret not in text, f"{secret[:8]}… found in {place}"


async def _everything_stored(settings, since: float, refused: int) -> dict[str, str]:
    """Prefect's flow runs, task runs, logs, artifacts and events since ``since``, and every Redis
    value and object (the planted private object aside), once the server has persisted the final
    state event of each of the ``refused`` runs (it writes events in batches)."""
    from datetime import UTC, datetime

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterStartTime,
        LogFilter,
        LogFilterFlowRunId,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )

    when = datetime.fromtimestamp(since - 1, UTC)
    stored: dict[str, str] = {}
    async with get_client() as client:
        failed_events = {
            "filter": {
                "occurred": {"since": when.isoformat()},
                "event": {"name": ["prefect.flow-run.Failed"]},
            },
            "limit": 50,
        }
        deadline = time.monotonic() + 60
        while (
            len((await client.request("POST", "/events/filter", json=failed_events)).json()["events"])
            < refused
        ):
            assert time.monotonic() < deadline, "the refused runs' final events never reached the server"
            await asyncio.sleep(0.5)
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=when)), limit=200
        )
        assert runs, "the refused runs are recorded"
        ids = [r.id for r in runs]
        stored["flow runs"] = _dump(runs)
        stored["task runs"] = _dump(
            await client.read_task_runs(
                task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=ids))
            )
        )
        stored["logs"] = _dump(await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids))))
        stored["artifacts"] = _dump(await client.read_artifacts())
        body = {"filter": {"occurred": {"since": when.isoformat()}}, "limit": 50}
        page = (await client.request("POST", "/events/filter", json=body)).json()
        pages = [page]
        while page.get("next_page") and len(pages) < 100:
            page = (await client._client.get(page["next_page"])).json()
            pages.append(page)
        stored["events"] = json.dumps(pages)
        assert sum(len(p["events"]) for p in pages) > 0
    redis = make_redis(settings.redis.url)
    try:
        values = []
        async for key in redis.scan_iter(count=1000):
            kind = (await redis.type(key)).decode()
            if kind == "string":
                values.append(str(await redis.get(key)))
            elif kind == "hash":
                values.append(str(await redis.hgetall(key)))
        stored["redis"] = "\n".join(values)
    finally:
        await redis.aclose()
    store = ObjectStore(settings.s3)
    names = [o.object_name for o in store._client.list_objects(settings.s3.bucket, recursive=True)]
    stored["object store"] = "\n".join(
        str(store.get_bytes_sync(name)) for name in names if not name.startswith("private/")
    )
    store.close()
    return stored


def _dump(items) -> str:
    return json.dumps([i.model_dump(mode="json") for i in items])
