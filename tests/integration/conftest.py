"""Real servers for the whole test session: a Redis and an S3-compatible store on free ports.

Started with the same LocalServices the `bookwarm services` command uses, in a temp folder, and
stopped at the end of the session even when tests fail. Never a server on a standard port.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bookwarm.services.local import LocalServices, ServicesState
from bookwarm.settings import Settings, resolve


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
