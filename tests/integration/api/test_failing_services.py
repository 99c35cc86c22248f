"""The API over services of its own that fail: Redis down gives 503 naming Redis; the object store
down still serves hot hits and gives 503 for cold reads; `/health` says which; and the API recovers
by itself when they are back (`services up` revives them on their ports with their data)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest

from bookwarm.cache.redis_client import make_redis
from bookwarm.keys import Keys
from bookwarm.parsing.names import author_key
from bookwarm.providers.fake.runner import provider_env
from bookwarm.services.local import LocalServices
from bookwarm.services.process import stop
from bookwarm.settings import resolve
from tests.integration.api.conftest import Api, start_api, warm

pytestmark = pytest.mark.heavy  # half a minute or more: handed out before the short files


@pytest.fixture
def own(tmp_path, fake_providers) -> Iterator[tuple[Api, LocalServices]]:
    local = LocalServices(tmp_path / "services", stop_grace_s=2.0)
    state = local.up()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BOOKWARM_", "PREFECT_API_URL"))},
        **state.env(),
        **provider_env(fake_providers),
        "BOOKWARM_HOME": str(tmp_path),
        "BOOKWARM_OPENLIBRARY_RPS": "1000",
        "BOOKWARM_API_CLIENT_RPS": "0",  # every test is one client (127.0.0.1): limits are test_triggers'
    }
    settings = resolve(env)
    asyncio.run(warm(settings, ["Neil Gaiman", "Terry Pratchett"]))
    url, proc = start_api(env, tmp_path / "api.log")
    try:
        yield Api(url, settings, env, proc), local
    finally:
        stop(proc.pid, 5.0)
        local.down()


def _forget_hot(api: Api, name: str) -> None:
    async def run() -> None:
        client = make_redis(api.settings.redis.url)
        try:
            await client.delete(Keys(api.settings.redis.key_prefix).author(author_key(name)))
        finally:
            await client.aclose()

    asyncio.run(run())


def test_object_store_down_or_hung_hot_hits_served_cold_reads_503_then_recovered(own):
    """Dead (SIGKILL), then hung: a store that accepts connections and never answers (SIGSTOP). A
    hung store's cold read is a 503 within BOOKWARM_API_COLD_READ_S: the client's 10 s timeout would
    fail the test first if the API waited out the wire's 30 s read timeouts."""
    api, local = own
    _forget_hot(api, "Terry Pratchett")  # only the object store has him now
    state = local.state()
    assert state is not None
    os.kill(state.s3_pid, signal.SIGKILL)
    with api.client() as client:
        hot = client.get("/v1/authors/Neil Gaiman")
        cold = client.get("/v1/authors/Terry Pratchett")
        health = client.get("/health")
    assert hot.status_code == 200 and hot.headers["x-bookwarm-tier"] == "hot"
    assert cold.status_code == 503 and cold.json()["service"] == "object store", cold.text
    assert "retry-after" in cold.headers
    assert health.status_code == 503 and health.json()["failed"] == ["object_store"]

    local.up()  # the store again, on its ports, with its data
    with api.client() as client:
        # The same API process serves it again, with no restart. Under load (CI) a restarted store
        # has failed a read or two just after it answered its readiness checks: a 503 with
        # Retry-After is then the right answer, so the read is asked again, as a client would.
        deadline = time.monotonic() + 30
        while (again := client.get("/v1/authors/Terry Pratchett")).status_code == 503:
            assert again.json()["service"] == "object store" and time.monotonic() < deadline, again.text
            time.sleep(0.2)
        assert again.status_code == 200 and again.headers["x-bookwarm-tier"] == "cold", again.text
        assert client.get("/health").status_code == 200

    _forget_hot(api, "Terry Pratchett")  # promoted by the read above: only the store has him again
    state = local.state()
    assert state is not None
    os.kill(state.s3_pid, signal.SIGSTOP)
    try:
        with api.client(timeout=10) as client:
            hot = client.get("/v1/authors/Neil Gaiman")
            cold = client.get("/v1/authors/Terry Pratchett")
            health = client.get("/health")
    finally:
        os.kill(state.s3_pid, signal.SIGCONT)
    assert hot.status_code == 200 and hot.headers["x-bookwarm-tier"] == "hot"
    assert cold.status_code == 503 and cold.json()["service"] == "object store", cold.text
    assert health.status_code == 503 and health.json()["failed"] == ["object_store"]
    with api.client() as client:
        again = client.get("/v1/authors/Terry Pratchett")
    assert again.status_code == 200 and again.headers["x-bookwarm-tier"] == "cold", again.text


def test_redis_down_is_503_naming_redis_then_recovered(own):
    api, local = own
    state = local.state()
    assert state is not None
    os.kill(state.redis_pid, signal.SIGKILL)
    with api.client() as client:
        down = client.get("/v1/authors/Neil Gaiman")
        health = client.get("/health")
    assert down.status_code == 503 and down.json()["service"] == "redis", down.text
    assert health.status_code == 503 and "redis" in health.json()["failed"]

    local.up()  # Redis again, on its port, with its data (append-only file)
    with api.client() as client:
        again = client.get("/v1/authors/Neil Gaiman")
    assert again.status_code == 200, again.text
