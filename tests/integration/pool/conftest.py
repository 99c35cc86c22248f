"""A work pool of this module's own: Redis, S3 and a Prefect server on PostgreSQL
(`LocalServices.up(postgres=True)`, as `bookwarm services up --postgres`), with the deployments
registered by `bookwarm deployments deploy`, and fake providers over a generated catalog.

Module-scoped, so each test file here has its own pool and the files run side by side. Each
pool's PostgreSQL starts on a copy of one data folder that Prefect migrated once for the run
(`postgres_template`), as the flows' SQLite servers do (`prefect_db_template`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bookwarm.providers.fake.runner import FakeProviders
from bookwarm.services.local import LocalServices
from bookwarm.services.postgres import postgres_url, start_postgres
from bookwarm.services.process import free_port, stop
from tests.bench.bench_warm import make_catalog, write_library
from tests.conftest import PROJECT
from tests.integration.conftest import made_once, migrate_prefect
from tests.integration.pool.pool import LIBRARY_AUTHORS


@pytest.fixture(scope="session")
def postgres_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PostgreSQL data folder with Prefect's schema, made once for the whole run, every xdist
    worker included (the first to come makes it under a lock). A pool's server started on a copy
    skips initdb and Prefect's migrations, the larger part of a pool's set-up."""

    def make(folder: Path) -> None:
        port = free_port()
        pid, _ = start_postgres(folder / "data", folder / "postgres.log", port)
        try:
            env = {**os.environ, "PREFECT_HOME": str(folder / "prefect")}
            migrate_prefect({**env, "PREFECT_API_DATABASE_CONNECTION_URL": postgres_url(port)})
        finally:
            stop(pid, 30.0)  # a clean shutdown: the copies start without recovery

    return made_once(tmp_path_factory, "postgres-template", make) / "data"


@pytest.fixture(scope="module")
def pool_server(
    tmp_path_factory: pytest.TempPathFactory, postgres_template: Path
) -> Iterator[dict[str, str]]:
    """Redis, S3 and a Prefect server on PostgreSQL of this module's own, the deployments deployed."""
    home = tmp_path_factory.mktemp("pool-services")
    # cp -a keeps the owner: as root, PostgreSQL runs as a system user of its own
    subprocess.run(["cp", "-a", str(postgres_template), str(home / "postgres")], check=True)
    local = LocalServices(home, stop_grace_s=5.0)
    try:
        state = local.up(postgres=True)
        assert state.postgres_pid, "the Prefect server is not on PostgreSQL"
        env = {
            **os.environ,
            **state.env(),
            "BOOKWARM_HOME": str(home),
            "PREFECT_HOME": str(home / "cli-prefect"),
        }
        deployed = subprocess.run(
            [sys.executable, "-m", "bookwarm", "deployments", "deploy"],
            env=env,
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert deployed.returncode == 0, deployed.stderr[-2000:]
        yield {**state.env(), "BOOKWARM_HOME": str(home)}
    finally:
        local.down()


@pytest.fixture(scope="module")
def pool_providers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """Fake providers over a generated catalog; yields (port, the library CSV)."""
    home = tmp_path_factory.mktemp("pool-providers")
    library = make_catalog(home / "catalog.json", LIBRARY_AUTHORS, coauthors=LIBRARY_AUTHORS)
    csv_path = write_library(home / "library.csv", library)
    runner = FakeProviders(home)
    state = runner.up(home / "catalog.json", real_limits=False)
    try:
        yield state.port, csv_path
    finally:
        runner.down()
