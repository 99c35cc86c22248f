"""A service down at the start of `bookwarm warm`: one line naming it and what to do, exit 1; the
traceback goes to the run's logs and the log file, never to the terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT
from tests.integration.conftest import warm_demo_command

pytestmark = pytest.mark.heavy  # half a minute or more: handed out before the short files


def warm(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        warm_demo_command(),
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def cli_env(services, prefect_api, tmp_path) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKWARM_")}
    return {
        **env,
        **services.env(),
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "BOOKWARM_HOME": str(tmp_path),
    }


@pytest.mark.parametrize(
    ("broken", "service"),
    [("BOOKWARM_REDIS_URL", "Redis"), ("BOOKWARM_S3_ENDPOINT", "object store")],
)
def test_a_service_down_is_one_line_and_the_traceback_goes_to_the_log(cli_env, tmp_path, broken, service):
    dead = (
        "redis://127.0.0.1:9/0" if broken == "BOOKWARM_REDIS_URL" else "127.0.0.1:9"
    )  # nothing listens on 9
    result = warm({**cli_env, broken: dead})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1
    assert len(lines) == 1 and lines[0].startswith("bookwarm: error:") and service in lines[0], result.stderr
    assert "bookwarm services up" in lines[0]
    log = tmp_path / "logs" / "bookwarm.log"
    if broken == "BOOKWARM_REDIS_URL":  # it failed inside the flow run: its traceback is logged
        assert "Traceback" in log.read_text(encoding="utf-8") and str(log) in lines[0]


def test_prefect_server_down_at_start_is_one_line(cli_env):
    """A configured Prefect API that does not answer: named, with what to do, before anything runs."""
    result = warm({**cli_env, "PREFECT_API_URL": "http://127.0.0.1:9/api"})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1
    assert len(lines) == 1 and "Prefect server at http://127.0.0.1:9/api is not answering" in lines[0], (
        result.stderr
    )


def test_a_prefect_api_that_answers_500_at_start_is_one_line_without_its_body(cli_env):
    """The server answers, but its database is down: creating the run fails with a 500. One line
    (status, method, path), no traceback, nothing of the server's message, and no job started."""
    from tests.fakes.overloaded_api import OverloadedApi

    with OverloadedApi(cli_env["PREFECT_API_URL"], broken_run_creation=True) as proxy:
        result = warm({**cli_env, "PREFECT_API_URL": proxy.url})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith(
        "bookwarm: error: the Prefect API failed the run before its job started: HTTP 500 on POST /api/flow_runs/"
    ), result.stderr[-3000:]
    assert "db-secret-dsn" not in result.stderr


def test_an_invalid_bucket_is_a_configuration_error(cli_env):
    result = warm({**cli_env, "BOOKWARM_S3_BUCKET": "Bad_Bucket"})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1 and "not a valid bucket name" in lines[0], result.stderr


def test_a_provider_down_mid_run_is_one_line_with_the_redrive(cli_env, fake_providers):
    """OpenLibrary down: every author a dead letter with its reason, then one line that says how many
    and how to redrive them; the summary table stays on stdout."""
    from bookwarm.providers.fake.runner import provider_env, set_faults
    from bookwarm.providers.fake.server import PROVIDERS, Faults

    set_faults(fake_providers, {p: Faults(down=p == "openlibrary") for p in PROVIDERS})
    try:
        result = warm(
            {
                **cli_env,
                **provider_env(fake_providers),
                "BOOKWARM_REDIS_PREFIX": "cli-provider-down:",
                "BOOKWARM_AUTHOR_RETRY_DELAY_S": "0",
                "BOOKWARM_OPENLIBRARY_TIMEOUT_S": "2",
            }
        )
    finally:
        set_faults(fake_providers, {p: Faults() for p in PROVIDERS})
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("[")]  # progress
    assert result.returncode == 1
    assert len(lines) == 1 and "authors failed" in lines[0] and "bookwarm redrive" in lines[0], result.stderr
    assert "authors_failed" in result.stdout


def test_sigterm_while_the_cli_starts_is_one_line_and_queues_nothing(cli_env, settings):
    """A SIGTERM before the job's flow runs (imports, services, parsing, the upload) said nothing and
    exited 143. Sent once the CLI's handler is in place (read from /proc, not guessed by a sleep)."""
    import asyncio
    import signal
    import time

    from bookwarm.cache.redis_client import make_redis
    from bookwarm.keys import Keys

    async def jobs() -> int:
        client = make_redis(settings.redis.url)
        try:
            return len([k async for k in client.scan_iter(match=Keys("bookwarm:").job("*"))])
        finally:
            await client.aclose()

    before = asyncio.run(jobs())
    cmd = [sys.executable, "-m", "bookwarm", "warm", str(PROJECT / "examples" / "library.csv")]
    proc = subprocess.Popen(cmd, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _catches(proc.pid, signal.SIGTERM):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.001)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and out == "", (proc.returncode, err[-2000:])
    assert err.splitlines() == ["bookwarm: stopped by SIGTERM (before any job started)"], err[-2000:]
    assert asyncio.run(jobs()) == before


def _catches(pid: int, signum: int) -> bool:
    """Whether ``pid`` has a handler for ``signum`` (SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught & (1 << (signum - 1)))


def test_a_sigterm_as_the_job_completes_says_completed_not_resume(cli_env, fake_providers):
    """A SIGTERM that lands after the job's record reads completed, before its process has ended
    (held there: the proxy parks the job's run's Completed until the signal is delivered), is one
    line saying the job completed and how to see it; no `bookwarm resume` (which would refuse it)."""
    import asyncio
    import json
    import signal
    import time

    from bookwarm.cache.redis_client import make_redis
    from bookwarm.keys import Keys
    from bookwarm.providers.fake.runner import provider_env
    from bookwarm.settings import resolve
    from bookwarm.warming.jobs import JobStore
    from tests.fakes.overloaded_api import OverloadedApi
    from tests.integration.conftest import signal_delivered

    env = {**cli_env, **provider_env(fake_providers), "BOOKWARM_REDIS_PREFIX": "cli-sigterm-at-end:"}
    cmd = warm_demo_command()
    with OverloadedApi(cli_env["PREFECT_API_URL"], hold_job_completion=True) as proxy:
        proc = subprocess.Popen(
            cmd,
            env={**env, "PREFECT_API_URL": proxy.url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while not proxy.completion_held.wait(0.1):
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise AssertionError(f"the job never proposed Completed: {proc.communicate()[1][-3000:]}")
            proc.send_signal(signal.SIGTERM)
            signal_delivered(proc.pid, signal.SIGTERM)
            proxy.release_completion.set()
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    said = [line for line in err.splitlines() if not line.startswith("[depth ")]
    assert proc.returncode == 1 and "Traceback" not in err, err[-3000:]
    assert len(said) == 1, said
    job_id = said[0].split("job ", 1)[1].split()[0]
    assert said[0] == (
        f"bookwarm: error: job {job_id} completed; stopped by SIGTERM came as it ended (`bookwarm status {job_id}`)"
    ), said
    assert "resume" not in said[0]

    async def status() -> str | None:
        settings = resolve(env)
        client = make_redis(settings.redis.url)
        try:
            return await JobStore(client, Keys(settings.redis.key_prefix), 3600).stored_status(job_id)
        finally:
            await client.aclose()

    assert asyncio.run(status()) == "completed"
    assert json.loads(out or "{}").get("status") in (None, "completed"), out
