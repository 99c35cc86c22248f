"""The local Prefect server does not grow for ever, and never forgets a dead letter too soon.

`bookwarm services up` starts the server with Prefect's own clean-up on (old runs with their task
runs, logs and artifacts; old events); `bookwarm services clean` runs it now. Two jobs' runs, each
with its Failed `dead-letter/…` task run: one ended just inside a job record's TTL (redrive can
still act on it), one ended past the run retention. Their end times are moved back in the
server's own database (the passage of days: the API takes no past timestamps), then the real
clean-up runs, through the CLI.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bookwarm.services.local import LocalServices
from bookwarm.settings import resolve
from tests.conftest import PROJECT
from tests.integration.conftest import seeded_prefect_home


def _post(url: str, body: dict) -> httpx.Response:
    """As Prefect's own client: a 503 (SQLite busy, as while the server's clean-up runs at its
    start) is asked again."""
    deadline = time.monotonic() + 60
    while (
        answer := httpx.post(url, json=body, timeout=30)
    ).status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert answer.status_code < 300, (url, answer.status_code, answer.text[:500])
    return answer


def _job_with_a_dead_letter(api: str, flow_id: str, name: str) -> tuple[str, str]:
    """A finished job run holding a Failed dead-letter task run, as a job leaves them: (run, task run)."""
    run = _post(f"{api}/flow_runs/", {"flow_id": flow_id, "name": name, "state": {"type": "RUNNING"}})
    run_id = run.json()["id"]
    task_run = _post(
        f"{api}/task_runs/",
        {
            "flow_run_id": run_id,
            "task_key": "dead-letter",
            "dynamic_key": name,
            "name": f"dead-letter/{name}/d0",
            "state": {"type": "FAILED", "message": "openlibrary: refused"},
        },
    )
    _post(f"{api}/flow_runs/{run_id}/set_state", {"state": {"type": "COMPLETED"}, "force": True})
    return run_id, task_run.json()["id"]


def _ended_ago(database: Path, run_id: str, age: timedelta) -> None:
    ended = (datetime.now(UTC) - age).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(database) as db:
        moved = db.execute("UPDATE flow_run SET end_time = ? WHERE id = ?", (ended, run_id)).rowcount
    assert moved == 1, f"flow run {run_id} not found in {database}"


def test_clean_up_keeps_a_jobs_dead_letters_while_its_record_lives(tmp_path, prefect_db_template) -> None:
    home = tmp_path / "home"
    seeded_prefect_home(home / "prefect", prefect_db_template)
    local = LocalServices(home, stop_grace_s=2.0)
    state = local.up(with_prefect=True)
    try:
        api = f"http://127.0.0.1:{state.prefect_port}/api"
        settings = resolve({})
        flow_id = _post(f"{api}/flows/", {"name": "warm-library"}).json()["id"]
        kept_run, kept_task = _job_with_a_dead_letter(api, flow_id, "record-still-lives")
        gone_run, gone_task = _job_with_a_dead_letter(api, flow_id, "long-expired")
        database = home / "prefect" / "prefect.db"
        # ended just before its record expires; the other an hour past the run retention
        _ended_ago(database, kept_run, timedelta(seconds=settings.redis.job_ttl_s) - timedelta(hours=1))
        _ended_ago(
            database, gone_run, timedelta(seconds=settings.orchestration.prefect_run_retention_s, hours=1)
        )

        cleaned = subprocess.run(
            [sys.executable, "-m", "bookwarm", "services", "clean"],
            env={**os.environ, "BOOKWARM_HOME": str(home)},
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert cleaned.returncode == 0 and cleaned.stderr == "", cleaned.stderr[-2000:]
        assert cleaned.stdout.startswith("Prefect database: "), cleaned.stdout

        assert httpx.get(f"{api}/flow_runs/{kept_run}").status_code == 200
        kept = httpx.get(f"{api}/task_runs/{kept_task}")
        assert kept.status_code == 200 and kept.json()["state"]["type"] == "FAILED"  # redrive's dead letter
        assert httpx.get(f"{api}/flow_runs/{gone_run}").status_code == 404
        assert httpx.get(f"{api}/task_runs/{gone_task}").status_code == 404  # its task runs went with it
    finally:
        local.down()
