"""`bookwarm api` as users run it: a real uvicorn process on loopback, over the session's Redis and
object store, with authors warmed from the fake providers through bookwarm's own write path."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bookwarm.parsing.names import author_key
from bookwarm.providers.fake.runner import provider_env
from bookwarm.services.process import free_port, stop
from bookwarm.settings import Settings, resolve
from tests.conftest import PROJECT

WARMED = ["Neil Gaiman", "Terry Pratchett", "Stephen King", "Ursula K. Le Guin", "John Smith", "Nobody Atall"]


@dataclass
class Api:
    url: str
    settings: Settings
    env: dict[str, str]
    proc: subprocess.Popen[bytes]

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, **{"timeout": 30, **kwargs})  # type: ignore[arg-type]


def start_api(env: dict[str, str], log: Path, *more: str) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bookwarm", "api", "--port", str(port), *more],
        env=env,
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code in (200, 503):
                return url, proc
        except httpx.HTTPError:
            pass
        time.sleep(0.05)  # polling for the port to answer, not a guess at a duration
    raise AssertionError(f"the API did not answer: {log.read_text()[-2000:]}")


async def warm(settings: Settings, names: list[str]) -> None:
    """Through bookwarm's own write path (what a warm run writes for each author)."""
    from bookwarm.warming.author import warm_one
    from bookwarm.warming.context import WarmContext

    async with WarmContext(settings) as ctx:
        for name in names:
            await warm_one(ctx, {"name": name, "key": author_key(name), "isbns": []}, 0, "api-setup")


@pytest.fixture(scope="module")
def api(
    services, fake_providers, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("api")
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")[:20]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BOOKWARM_", "PREFECT_API_URL"))},
        **services.env(),
        **provider_env(fake_providers),
        "BOOKWARM_HOME": str(home),
        # a prefix and a bucket of the module's own: object names have no prefix (the contract)
        "BOOKWARM_REDIS_PREFIX": f"api{os.getpid()}{module}:",
        "BOOKWARM_S3_BUCKET": f"api-{os.getpid()}-{module}",
        "BOOKWARM_OPENLIBRARY_RPS": "1000",
        "BOOKWARM_API_CLIENT_RPS": "0",  # every test is one client (127.0.0.1): limits are test_triggers'
        "BOOKWARM_ISBNDB_RPS": "1000",
        "BOOKWARM_GOOGLE_BOOKS_RPS": "1000",
    }
    settings = resolve(env)
    asyncio.run(warm(settings, WARMED))
    url, proc = start_api(env, home / "api.log")
    try:
        yield Api(url, settings, env, proc)
    finally:
        stop(proc.pid, 5.0)
