"""Real servers for the whole test session: a Redis and an S3-compatible store on free ports.

Started with the same LocalServices the `bookwarm services` command uses, in a temp folder, and
stopped at the end of the session even when tests fail. Never a server on a standard port.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bookwarm.services.local import LocalServices, ServicesState
from bookwarm.settings import Settings, resolve
from tests.conftest import FIXTURES, PROJECT

CATALOG = PROJECT / "examples" / "catalog.json"


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServicesState]:
    local = LocalServices(tmp_path_factory.mktemp("services"), stop_grace_s=2.0)
    state = local.up()
    try:
        yield state
    finally:
        local.down()


@pytest.fixture(scope="session")
def settings(services: ServicesState) -> Settings:
    return resolve(services.env())


@pytest.fixture(scope="session")
def fake_providers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The fake provider server (a real HTTP server on loopback) over the demo catalog; yields its port."""
    from bookwarm.providers.fake.runner import FakeProviders

    runner = FakeProviders(tmp_path_factory.mktemp("fake-providers"))
    state = runner.up(CATALOG, real_limits=False)
    try:
        yield state.port
    finally:
        runner.down()


@pytest.fixture
def provider_settings(
    services: ServicesState, fake_providers: int, request: pytest.FixtureRequest
) -> Settings:
    """Settings against the fake providers, with a Redis key prefix of its own per test (fresh limits)."""
    from bookwarm.providers.fake.runner import provider_env, set_faults
    from bookwarm.providers.fake.server import PROVIDERS, Faults

    set_faults(fake_providers, {p: Faults() for p in PROVIDERS})
    prefix = f"t{abs(hash(request.node.nodeid)) % 10**8}:"
    return resolve(
        {
            **services.env(),
            **provider_env(fake_providers),
            "BOOKWARM_REDIS_PREFIX": prefix,
            "BOOKWARM_OPENLIBRARY_RPS": "1000",
            "BOOKWARM_ISBNDB_RPS": "1000",
            "BOOKWARM_GOOGLE_BOOKS_RPS": "1000",
            "BOOKWARM_AUTHOR_RETRY_DELAY_S": "0",  # retries still happen, without the wait
        }
    )


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """A folder of this run's, shared by every xdist worker: ``make(folder)`` runs once, by the first
    worker to come, under a lock the others wait on."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's, not older runs'
    folder = shared / name
    folder.mkdir(exist_ok=True)
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "ready").exists():
            make(folder)
            (folder / "ready").touch()
    return folder


def migrate_prefect(env: dict[str, str]) -> None:
    """Prefect's migrations on the database ``env`` names (PREFECT_HOME's SQLite, or its URL)."""
    subprocess.run(
        [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
        env=env,
        check=True,
        capture_output=True,
        timeout=180,
    )


@pytest.fixture(scope="session")
def prefect_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Prefect SQLite database migrated once for the whole run, every xdist worker included (the
    first to come migrates it under a lock): a server started on a copy skips its migrations
    (5.8 s to start here instead of 12.1 s; docs/decisions.md)."""

    def make(folder: Path) -> None:
        env = {**os.environ, "PREFECT_HOME": str(folder / "migrating")}
        env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
        migrate_prefect(env)
        (folder / "migrating" / "prefect.db").rename(folder / "prefect.db")

    return made_once(tmp_path_factory, "prefect-db-template", make) / "prefect.db"


def seeded_prefect_home(home: Path, template: Path) -> Path:
    """``home`` as a Prefect home whose database is a copy of the migrated ``template``."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, home / "prefect.db")
    return home


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory, prefect_db_template: Path) -> Iterator[str]:
    """One Prefect server (`prefect server start`, as `bookwarm services up` runs it) for every flow
    test of this xdist worker, on a copy of the migrated database (5.8 s to start where
    prefect_test_harness, migrating its own, took 16.6 s); yields its API URL, which this process
    uses and the tests hand to the CLIs they start."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from bookwarm.services.local import start_prefect_server
    from bookwarm.services.process import stop

    home = seeded_prefect_home(tmp_path_factory.mktemp("prefect-api"), prefect_db_template)
    pid, port = start_prefect_server(home, home / "server.log", stop_grace_s=2.0)
    url = f"http://127.0.0.1:{port}/api"
    try:
        with temporary_settings({PREFECT_API_URL: url}):  # as prefect_test_harness: not the environment
            yield url
    finally:
        stop(pid, 2.0)


def point_flows_at(port: int, services, monkeypatch, request, tmp_path_factory, letter: str) -> Settings:
    """The environment flows resolve their settings from: real servers, the fake providers on
    ``port`` (faults cleared), a Redis key prefix of the test's own."""
    from bookwarm.providers.fake.runner import provider_env, set_faults
    from bookwarm.providers.fake.server import PROVIDERS, Faults

    set_faults(port, {p: Faults() for p in PROVIDERS})
    env = {
        **services.env(),
        **provider_env(port),
        "BOOKWARM_REDIS_PREFIX": f"{letter}{abs(hash(request.node.nodeid)) % 10**8}:",
        "BOOKWARM_OPENLIBRARY_RPS": "500",
        "BOOKWARM_ISBNDB_RPS": "500",
        "BOOKWARM_GOOGLE_BOOKS_RPS": "500",
        "BOOKWARM_CLAIM_TTL_S": "3",
        # Runs read local files only under these: the tests' own temp folders and fixtures.
        "BOOKWARM_SOURCE_ROOTS": f"{tmp_path_factory.getbasetemp()},{FIXTURES}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return resolve(env)


@pytest.fixture
def flow_env(services, fake_providers, prefect_api, monkeypatch, request, tmp_path_factory) -> Settings:
    """Flows against the demo catalog's fake providers."""
    return point_flows_at(fake_providers, services, monkeypatch, request, tmp_path_factory, "f")


@pytest.fixture
def economy_env(services, economy_providers, prefect_api, monkeypatch, request, tmp_path_factory) -> Settings:
    """Flows against the economy catalog's fake providers (namesakes, ISBNs, descriptions)."""
    return point_flows_at(economy_providers, services, monkeypatch, request, tmp_path_factory, "e")


def hold_midway(port: int, authors: int, max_s: float = 60.0) -> None:
    """The fake OpenLibrary on ``port`` answers for the first ``authors`` authors asked, then holds
    every query about another until `release_holds` (or ``max_s``): a job caught midway with
    exactly those authors fetched, whatever the machine's speed. Clears the other faults."""
    from bookwarm.providers.fake.runner import set_faults
    from bookwarm.providers.fake.server import PROVIDERS, Faults

    held = Faults(hold_after_authors=authors, hold_max_s=max_s)
    set_faults(port, {p: Faults() for p in PROVIDERS} | {"openlibrary": held})


def post_to_prefect(url: str, body: dict) -> Any:
    """POST to a Prefect API as its own client does: a 503 (SQLite busy under load) is tried again."""
    import time

    import httpx

    deadline = time.monotonic() + 30
    while (answer := httpx.post(url, json=body, timeout=30)).status_code == 503:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)
    return answer


async def processed(settings: Settings) -> dict[str, dict]:
    """Every `warming:processed:{key}` record of the test's prefix: who was warmed, how, at what depth."""
    import json

    from bookwarm.cache.redis_client import make_redis
    from bookwarm.keys import Keys

    client = make_redis(settings.redis.url)
    keys = Keys(settings.redis.key_prefix)
    try:
        found = {}
        async for raw in client.scan_iter(match=keys.processed("*")):
            found[raw.decode().rsplit(":", 1)[-1]] = json.loads(await client.get(raw))
        return found
    finally:
        await client.aclose()


ECONOMY_CATALOG = FIXTURES / "catalog_economy.json"


@pytest.fixture(scope="session")
def economy_providers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A second fake provider server over a catalog of namesakes, initials, non-Latin names, a
    prolific author and works with descriptions (tests/fixtures/catalog_economy.json)."""
    from bookwarm.providers.fake.runner import FakeProviders

    runner = FakeProviders(tmp_path_factory.mktemp("economy-providers"))
    state = runner.up(ECONOMY_CATALOG, real_limits=False)
    try:
        yield state.port
    finally:
        runner.down()


def signal_delivered(pid: int, signum: int, timeout_s: float = 10.0) -> None:
    """Until the kernel has handed ``signum`` to ``pid`` (no longer pending: its handler is called)."""
    bit = 1 << (signum - 1)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            status = open(f"/proc/{pid}/status").read()  # noqa: SIM115
        except FileNotFoundError:
            return  # gone: delivered
        pending = [
            int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd", "ShdPnd"))
        ]
        if not any(mask & bit for mask in pending):
            return
        assert time.monotonic() < deadline, f"signal {signum} still pending for pid {pid}"
        time.sleep(0.01)


def communicate_or_dump(proc: subprocess.Popen[str], timeout_s: float, what: str) -> tuple[str, str]:
    """A bookwarm CLI process's output; if it does not end within ``timeout_s``, an AssertionError
    with what it printed and what each of its asyncio tasks waits on (`kill -USR1` dumps them to
    stderr: bookwarm/task_dump.py): a hang is explained, not only timed out."""
    try:
        return proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=3)  # the dump is written meanwhile
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"{what} did not end in {timeout_s:g} s:\n{(err or '')[-12000:]}") from None


def warm_demo_command() -> list[str]:
    """`bookwarm warm` of the demo library at depth 1, as the CLI tests run it."""
    return [
        sys.executable,
        "-m",
        "bookwarm",
        "warm",
        str(PROJECT / "examples" / "library.csv"),
        "--max-depth",
        "1",
    ]
