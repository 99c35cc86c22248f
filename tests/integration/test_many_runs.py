"""Reads of many runs against a real Prefect server, which refuses a read of more than 200 at once
(422): a job with more shard runs than that must still see every one end, and a job that cannot
read its shard runs' states at all must stop, not poll for ever."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tasks.prefect_api import PAGE, _open_subflow_runs, current_states
from tests.integration.conftest import post_to_prefect

RUNS = PAGE + 30  # more than one page


def _post(api: str, path: str, body: dict) -> dict:
    answer = post_to_prefect(f"{api}{path}", body)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


@pytest.fixture
def flow_id(prefect_api: str) -> str:
    return _post(prefect_api, "/flows/", {"name": f"many-runs-{uuid.uuid4().hex[:8]}"})["id"]


def test_a_read_of_more_than_200_runs_is_refused_by_the_server_itself(prefect_api, flow_id):
    """The bound this file is about, on the server the tests run against."""
    answer = httpx.post(f"{prefect_api}/flow_runs/filter", json={"limit": PAGE + 1}, timeout=30)
    assert answer.status_code == 422, answer.text


async def test_a_job_with_more_shard_runs_than_a_page_reads_every_one(prefect_api, flow_id):
    """A job's shard runs are subflows of its run: their states are all read (the shard watcher),
    and the open ones are all found (what `report_run_ends` ends under a job that ended while the
    API was away), past one page of 200."""
    parent = _post(
        prefect_api, "/flow_runs/", {"flow_id": flow_id, "state": {"type": "RUNNING", "name": "Running"}}
    )
    task = _post(
        prefect_api,
        "/task_runs/",
        {"flow_run_id": parent["id"], "task_key": "shard", "dynamic_key": "0", "name": "shard"},
    )
    kinds: dict[uuid.UUID, str] = {}
    for n in range(RUNS):
        kind = "COMPLETED" if n % 10 == 0 else "PENDING"
        child = _post(
            prefect_api,
            "/flow_runs/",
            {
                "flow_id": flow_id,
                "parent_task_run_id": task["id"],
                "state": {"type": kind, "name": kind.title()},
            },
        )
        kinds[uuid.UUID(child["id"])] = kind
    states = await current_states(list(kinds))
    assert {run_id: state.type.value for run_id, state in states.items()} == kinds
    still_open = {run_id for run_id, kind in kinds.items() if kind != "COMPLETED"}
    assert len(still_open) > PAGE
    assert set(await _open_subflow_runs(uuid.UUID(parent["id"]))) == still_open


async def test_a_job_that_cannot_read_its_shard_runs_stops_after_the_grace(prefect_api):
    """Every read of the shard runs' states is refused (422, as Prefect answers a read of more than
    200): past the job's grace the watcher stops the job as interrupted, saying why, and hands each
    waiting shard a Crashed state, where it used to poll for ever."""
    import asyncio

    from prefect import flow
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from bookwarm.warming.stop import forget, stop_signal
    from flows.shards import ShardRunWatcher
    from tests.fakes.overloaded_api import OverloadedApi

    job_id = f"j-{uuid.uuid4().hex[:8]}"

    @flow(name="unreadable-shards")
    async def job() -> tuple[str, str, str | None]:
        watcher = ShardRunWatcher(job_id, "bookwarm", poll_s=0.1, start_timeout_s=60, grace_s=1.0)
        state = await asyncio.wait_for(watcher.final_state(uuid.uuid4()), 60)
        return state.type.value, state.message or "", stop_signal(job_id).status

    try:
        with (
            OverloadedApi(prefect_api, refuse_run_reads=True) as proxy,
            # the client's own retries stay on: a 422 is never retried, and a 503 from the server
            # (SQLite busy while other tests run) failed the flow run's creation when they were off
            temporary_settings({PREFECT_API_URL: proxy.url}),
        ):
            state_type, message, status = await job()
    finally:
        forget(job_id)
    assert proxy.refused >= 2  # read again until the grace was spent
    assert state_type == "CRASHED" and status == "interrupted"
    assert "cannot read its shard runs' states" in message and "422" in message, message
