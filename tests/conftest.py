"""Shared test set-up: an isolated PREFECT_HOME and no telemetry, before anything imports Prefect."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="bookwarm-test-prefect-"))
os.environ["PREFECT_HOME"] = str(_HOME)  # never the project's or the user's Prefect home
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
for _name in [n for n in os.environ if n.startswith("BOOKWARM_")]:
    del os.environ[_name]  # tests decide their own configuration
os.environ["BOOKWARM_AUTHOR_RETRY_DELAY_S"] = "0"  # task retries still happen, without the wait


def _one_certificate_bundle(folder: Path) -> str:
    """A CA bundle of one certificate (the first of certifi's). No test speaks TLS to a server it
    trusts (every server is plain HTTP on loopback; test_transport's self-signed one must be refused
    whatever the bundle), yet every Prefect client, in every process a test starts, loads the
    machine's whole bundle when it is made: about 20 ms of CPU each, several per flow run. Loading
    one certificate takes under 1 ms (docs/decisions.md, session 17)."""
    import certifi

    bundle = Path(certifi.where()).read_text()
    end = "-----END CERTIFICATE-----"
    path = folder / "one-ca.pem"
    path.write_text(bundle[: bundle.index(end) + len(end)] + "\n")
    return str(path)


os.environ["PREFECT_API_SSL_CERT_FILE"] = os.environ["SSL_CERT_FILE"] = _one_certificate_bundle(_HOME)

PROJECT = Path(__file__).resolve().parents[1]
FIXTURES = PROJECT / "tests" / "fixtures"
SHARED = Path(os.environ.get("BOOKWARM_SHARED_DIR", PROJECT.parent / "shared")) / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared fixtures not present at {SHARED}: real-data tests skipped")
    return SHARED


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files marked ``long`` first, then the unit tests, then those marked ``heavy``, then the rest,
    each file's tests kept together and in order. Under xdist (``--dist loadfile
    --no-loadscope-reorder``) the long files start at once on workers of their own, the file each
    worker is handed to run next (xdist hands out two at the start) is a unit file of a second, not
    one more minute behind a long one, and the heavy files are handed out before the short ones,
    so that no worker ends the run alone on a minute-long file (longest first: the tail is short)."""

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("long") is not None:
            return 0
        if "unit" in item.path.parts:
            return 1
        return 2 if item.get_closest_marker("heavy") is not None else 3

    items.sort(key=rank)  # stable: the order within a rank is kept


HANG_DUMP_BEFORE_S = 10.0  # before pytest-timeout fails a test, what its event loops wait on


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test about to be failed by pytest-timeout first prints every asyncio task of each running
    event loop of this process, down to the line it waits on (bookwarm.task_dump): the timeout's
    own dump shows threads only, and a flow run in the test's loop shows as a selector waiting."""
    marker = item.get_closest_marker("timeout")
    limit = float(marker.args[0]) if marker and marker.args else float(item.config.getini("timeout") or 0)
    timer = None
    if limit > HANG_DUMP_BEFORE_S:
        timer = threading.Timer(limit - HANG_DUMP_BEFORE_S, _dump_running_loops, args=(item.nodeid,))
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()


def _dump_running_loops(nodeid: str) -> None:
    import asyncio
    import gc

    from bookwarm.task_dump import tasks_and_threads

    loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]
    for loop in loops:
        with contextlib.suppress(Exception):  # another thread's loop, read while it runs: best effort
            print(f"{nodeid}: near its timeout, an event loop:\n{tasks_and_threads(loop)}", file=sys.stderr)
