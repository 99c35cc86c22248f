"""Shared test set-up: an isolated PREFECT_HOME and no telemetry, before anything imports Prefect."""

from __future__ import annotations

import os
import tempfile
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

PROJECT = Path(__file__).resolve().parents[1]
FIXTURES = PROJECT / "tests" / "fixtures"
SHARED = Path(os.environ.get("BOOKWARM_SHARED_DIR", PROJECT.parent / "shared")) / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared fixtures not present at {SHARED}: real-data tests skipped")
    return SHARED


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files marked ``long`` first, then the unit tests, then the rest, each file's tests kept
    together and in order. Under xdist (``--dist loadfile --no-loadscope-reorder``) the long files
    start at once on workers of their own, and the file each worker is handed to run next (xdist
    hands out two at the start) is a unit file of a second, not one more minute behind a long one."""

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("long") is not None:
            return 0
        return 1 if "unit" in item.path.parts else 2

    items.sort(key=rank)  # stable: the order within a rank is kept
