"""Several processes share one Redis limiter: a fake OpenLibrary enforcing its real 3 calls/s
(answering 429 past it) sees none of them go over."""

from __future__ import annotations

import os
import subprocess
import sys

from bookwarm.providers.fake.runner import FakeProviders, provider_env, stats
from tests.conftest import PROJECT
from tests.integration.conftest import CATALOG

PROCESSES = 3
CALLS_EACH = 6


def test_three_processes_one_limiter_no_429(services, tmp_path):
    fake = FakeProviders(tmp_path / "fake")
    port = fake.up(CATALOG, real_limits=True).port
    try:
        env = {
            **os.environ,
            **services.env(),
            **provider_env(port),
            "BOOKWARM_REDIS_PREFIX": "shared-limiter:",
            "BOOKWARM_OPENLIBRARY_RPS": "3",
        }
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.integration.limited_client", str(CALLS_EACH)],
                cwd=PROJECT,
                env=env,
                stderr=subprocess.PIPE,
            )
            for _ in range(PROCESSES)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode()[-2000:]
        served = stats(port)["openlibrary"]
    finally:
        fake.down()
    assert served["limit_429"] == 0, served
    assert served["requests"] == PROCESSES * CALLS_EACH, served  # no call retried
