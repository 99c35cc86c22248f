"""A job's final state reaches Prefect even when the job ended while the API was unreachable.

Real parts: the session's Redis and Prefect server. The runs are created through Prefect's client
(as a job's flow run and its shard subflow runs are), left Running as a process that lost its API
leaves them, and ``report_run_ends`` is what the next job (or `bookwarm services up`) calls.
"""

from __future__ import annotations

import subprocess
import sys

from prefect.client.orchestration import get_client
from prefect.states import Completed, Running

from bookwarm.cache.redis_client import make_redis
from bookwarm.keys import Keys
from bookwarm.warming.run_ends import FOREIGN_AFTER_S, RunEnds
from flows.warm_authors import warm_authors
from flows.warm_library import warm_library
from tasks.jobs import finish_job
from tasks.prefect_api import report_run_ends


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped): an owner that is gone."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


async def _run(client, *, state, parent=None):
    """A flow run in ``state``; with ``parent``, a subflow run of it (linked through a task run of
    the parent's, as Prefect links a shard to its job)."""
    parent_task_run_id = None
    if parent is not None:
        task_run = await client.create_task_run(
            task=finish_job, flow_run_id=parent.id, dynamic_key="shard-0", state=Running()
        )
        parent_task_run_id = task_run.id
    flow = warm_authors if parent is not None else warm_library
    return await client.create_flow_run(flow, state=state, parent_task_run_id=parent_task_run_id)


async def test_ended_runs_get_their_final_state_and_their_open_shards_too(flow_env):
    redis = make_redis(flow_env.redis.url)
    ends = RunEnds(redis, Keys(flow_env.redis.key_prefix), 3600)
    made = []
    try:
        async with get_client() as client:
            lost = await _run(client, state=Running())  # its process exited with the API down
            shard = await _run(client, state=Running(), parent=lost)
            reported = await _run(client, state=Completed())  # the engine did tell Prefect
            live = await _run(client, state=Running())  # its process is still at it
            made = [lost, shard, reported, live]

        dead = _dead_pid()
        # its owner, another process, has exited:
        await ends.record(str(lost.id), "job-lost", "interrupted", "job job-lost interrupted", owner_pid=dead)
        await ends.record(str(reported.id), "job-reported", "completed", "job job-reported completed")
        await ends.record(str(live.id), "job-live", "completed", "job job-live completed")

        ended = await report_run_ends(ends)

        assert ended == [str(lost.id)]
        async with get_client() as client:
            lost_now, shard_now, live_now = (
                await client.read_flow_run(lost.id),
                await client.read_flow_run(shard.id),
                await client.read_flow_run(live.id),
            )
        assert lost_now.state_type.value == "CRASHED"
        assert "recorded by bookwarm once the Prefect API was back" in lost_now.state.message
        assert shard_now.state_type.value == "CRASHED"  # the shard under it ended with it
        assert live_now.state_type.value == "RUNNING"  # never raced: its owner may still report it
        assert set(await ends.pending()) == {str(live.id)}  # the lost and the reported are settled
        assert await report_run_ends(ends) == []  # and nothing is told twice
    finally:
        async with get_client() as client:  # no Running run left for the session's other tests
            for run in made:
                await client.delete_flow_run(run.id)
        await redis.delete(Keys(flow_env.redis.key_prefix).run_ends())
        await redis.aclose()


def test_an_owner_on_another_host_is_waited_for_then_reconciled():
    from bookwarm.warming.run_ends import RunEnd

    end = RunEnd("j", "completed", "", "another-host", 1, ended_ts=1000.0)
    assert not end.owner_gone(now=1000.0 + FOREIGN_AFTER_S - 1)
    assert end.owner_gone(now=1000.0 + FOREIGN_AFTER_S + 1)
    assert end.state_type == "COMPLETED"
    assert RunEnd("j", "interrupted", "", "h", 1, 0.0).state_type == "CRASHED"


def test_services_up_gives_the_back_server_what_ended_while_it_was_down(tmp_path, prefect_db_template):
    """`bookwarm services up` after the local Prefect server died: the job run that ended meanwhile
    (its process gone) reads Crashed, not Running, once the server is back."""
    import asyncio
    import os

    import httpx

    from bookwarm.services.local import LocalServices
    from tests.integration.conftest import post_to_prefect, seeded_prefect_home
    from tests.integration.test_services import _kill

    seeded_prefect_home(tmp_path / "prefect", prefect_db_template)
    local = LocalServices(tmp_path, stop_grace_s=2.0)
    state = local.up(with_prefect=True)
    try:
        api = f"http://127.0.0.1:{state.prefect_port}/api"
        flow = post_to_prefect(f"{api}/flows/", {"name": "warm-library"}).json()
        created = post_to_prefect(
            f"{api}/flow_runs/", {"flow_id": flow["id"], "state": {"type": "RUNNING", "name": "Running"}}
        )
        assert created.status_code == 201, created.text
        run = created.json()

        async def record() -> None:
            redis = make_redis(f"redis://127.0.0.1:{state.redis_port}/0")
            try:
                await RunEnds(redis, Keys(""), 3600).record(
                    run["id"], run["id"], "completed", f"job {run['id']} completed", owner_pid=_dead_pid()
                )
            finally:
                await redis.aclose()

        asyncio.run(record())
        _kill(state.prefect_pid)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKWARM_", "PREFECT_API"))} | {
            "BOOKWARM_HOME": str(tmp_path)
        }
        up = subprocess.run(
            [sys.executable, "-m", "bookwarm", "services", "up"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert up.returncode == 0, up.stderr[-2000:]
        assert "# gave Prefect the final state of 1 job run(s)" in up.stdout, up.stdout
        back = local.running()
        assert back is not None and back.prefect_port == state.prefect_port
        now = httpx.get(f"{api}/flow_runs/{run['id']}", timeout=10).json()["state"]
        assert now["type"] == "COMPLETED" and "recorded by bookwarm" in now["message"]
    finally:
        local.down()
