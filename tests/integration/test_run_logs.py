"""The job's run page tells the operator what happened: what was parsed, each level, every dead
letter with its reason (WARNING), and the summary; Prefect's per-task-run lines stay out.

Run through `bookwarm warm` as a user runs it (its logging set-up included), against the test
Prefect API, then read from the API what the run page shows."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

from bookwarm.providers.fake.runner import provider_env, set_faults
from bookwarm.providers.fake.server import PROVIDERS, Faults
from tests.integration.test_flows import library


def _logs(job_id: str) -> list[tuple[int, str]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async def read() -> list[tuple[int, str]]:
        async with get_client() as client:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[job_id])), limit=200
            )
        return [(log.level, log.message) for log in logs]

    return asyncio.run(read())


def test_the_job_run_page_has_parse_levels_dead_letters_and_summary(
    services, prefect_api, fake_providers, tmp_path
):
    from prefect.settings import PREFECT_API_URL

    set_faults(
        fake_providers,
        {**{p: Faults() for p in PROVIDERS}, "openlibrary": Faults(fail_when_asked="Ursula K. Le Guin")},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKWARM_", "PREFECT_LOGGING"))}
    env.update(
        {
            **services.env(),
            **provider_env(fake_providers),
            "PREFECT_API_URL": PREFECT_API_URL.value(),
            "BOOKWARM_HOME": str(tmp_path / "home"),
            "BOOKWARM_REDIS_PREFIX": "run-logs:",
            "BOOKWARM_AUTHOR_RETRY_DELAY_S": "0",
            "BOOKWARM_SOURCE_ROOTS": str(tmp_path),
        }
    )
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "bookwarm",
                "warm",
                library(tmp_path, "Neil Gaiman", "Ursula K. Le Guin"),
                "--max-depth",
                "1",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        set_faults(fake_providers, {p: Faults() for p in PROVIDERS})
    assert result.returncode == 1, result.stderr[-2000:]  # one dead letter
    job_id = json.loads(result.stdout)["job_id"]

    deadline = time.monotonic() + 60  # logs reach the API a moment after the run
    logs = _logs(job_id)
    while not any(m.startswith(f"job {job_id} completed:") for _, m in logs):
        assert time.monotonic() < deadline, logs
        time.sleep(0.5)
        logs = _logs(job_id)
    info = [m for level, m in logs if level == 20]
    warnings = [m for level, m in logs if level == 30]
    assert any(
        m.startswith("parsed ") and "format generic, 2 rows, 2 authors, 0 rows rejected" in m for m in info
    )
    assert any(m.startswith("depth 0: 2 authors in 1 shard(s)") for m in info)
    assert any(m.startswith("depth 1: ") for m in info)
    (dead,) = [m for m in warnings if m.startswith("dead letter: ")]
    assert "Ursula K. Le Guin (depth 0)" in dead and "openlibrary" in dead
    (summary,) = [m for m in info if m.startswith(f"job {job_id} completed:")]
    assert "1 failed" in summary and "0 not started" in summary
    assert not any("Finished in state" in m and "warm-batch" in m for _, m in logs)  # no per-task lines


def test_commands_without_a_file_keep_prefects_task_run_lines_off_the_run_page(
    services, prefect_api, fake_providers, tmp_path
):
    """`warm-authors`, `warm-demand`, `refresh`, `redrive` and `resume` prepare the runtime inside
    run_flow: Prefect, imported before that, had configured its logging first, and every task run put
    "Finished in state Completed()" on the run page."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKWARM_", "PREFECT_LOGGING"))}
    env.update(
        {
            **services.env(),
            **provider_env(fake_providers),
            "PREFECT_API_URL": PREFECT_API_URL.value(),
            "BOOKWARM_HOME": str(tmp_path / "home"),
            "BOOKWARM_REDIS_PREFIX": "run-logs-names:",
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "bookwarm", "warm-authors", "Neil Gaiman", "--max-depth", "0", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    job_id = json.loads(result.stdout)["job_id"]
    deadline = time.monotonic() + 60
    logs = _logs(job_id)
    while not any(m.startswith(f"job {job_id} completed:") for _, m in logs):
        assert time.monotonic() < deadline, logs
        time.sleep(0.5)
        logs = _logs(job_id)
    flow_lines = [m for _, m in logs if m.startswith(("depth 0:", f"job {job_id} completed:"))]
    assert len(flow_lines) == 2  # the job's own lines are there
    finished = [m for _, m in logs if m == "Finished in state Completed()"]
    assert len(finished) <= 1, logs  # the flow run's own, not one per task run (start-job, finish-job)
