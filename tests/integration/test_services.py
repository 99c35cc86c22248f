"""The local services: real servers that start, serve, and leave no process behind."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx
import pytest
import redis

from bookwarm.cache.objectstore import ObjectStore
from bookwarm.errors import ConfigError
from bookwarm.services.local import LocalServices
from bookwarm.services.process import pid_alive
from bookwarm.settings import ObjectStoreSettings, resolve

pytestmark = pytest.mark.heavy  # half a minute or more: handed out before the short files


def test_redis_answers_on_a_non_standard_port(services, settings):
    assert services.redis_port != 6379
    client = redis.Redis.from_url(settings.redis.url)
    assert client.ping()
    client.delete("probe")
    assert client.set("probe", "1", nx=True, ex=5) is True  # a claim is taken once
    assert client.set("probe", "2", nx=True, ex=5) is None  # and refused while it lives
    assert client.get("probe") == b"1"


async def test_object_store_creates_bucket_and_round_trips_json(settings):
    store = ObjectStore(settings.s3)
    store.ensure_bucket()
    store.ensure_bucket()  # idempotent
    key = f"tests/{uuid.uuid4()}.json"
    await store.put_json(key, {"name": "Ursula K. Le Guin", "works": [1, 2]})
    assert await store.get_json(key) == {"name": "Ursula K. Le Guin", "works": [1, 2]}
    assert await store.get_json("tests/missing.json") is None
    await store.aclose()


def test_object_store_needs_credentials():
    with pytest.raises(ConfigError, match="BOOKWARM_S3_ENDPOINT"):
        ObjectStore(ObjectStoreSettings(endpoint="", access_key="", secret_key=None))


def test_cli_up_status_down_leaves_no_process(tmp_path, prefect_db_template):
    # Prefect's database migrated already (as every server of the suite but one starts: migrations
    # cost 5 s of CPU); a first start on a fresh home is test_embedded_prefect_server_keeps_its_data...
    from tests.integration.conftest import seeded_prefect_home

    seeded_prefect_home(tmp_path / "home" / "prefect", prefect_db_template)
    env = {**os.environ, "BOOKWARM_HOME": str(tmp_path / "home")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bookwarm", "services", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    from bookwarm.services.local_api import LocalApi

    try:
        up = cli("up")
        assert up.returncode == 0, up.stderr
        assert "export BOOKWARM_REDIS_URL=redis://127.0.0.1:" in up.stdout
        state = LocalServices(tmp_path / "home").state()
        assert state and pid_alive(state.redis_pid) and pid_alive(state.s3_pid)
        again = cli("up")  # idempotent: the same servers
        assert again.returncode == 0 and f":{state.redis_port}/" in again.stdout
        assert cli("status").returncode == 0
        # the read API `bookwarm demo` starts beside them, over them (nothing else configured)
        api = LocalApi(tmp_path / "home").up({**env, "BOOKWARM_API_CLIENT_RPS": "0"})
        health = httpx.get(f"{api.url}/health", timeout=10)
        assert health.status_code == 200 and health.json()["checks"]["redis"] == "ok", health.text
        down = cli("down")
        assert down.returncode == 0 and "stopped" in down.stdout
        assert not pid_alive(state.redis_pid) and not pid_alive(state.s3_pid) and not pid_alive(api.pid)
        assert cli("status").returncode == 3
    finally:  # a failed assertion above must not leave servers running beside the rest of the suite
        LocalApi(tmp_path / "home").down()
        LocalServices(tmp_path / "home").down()


def test_failed_start_leaves_nothing_running(tmp_path, monkeypatch):
    from bookwarm.services import binaries

    monkeypatch.setattr(binaries, "weed", lambda: "/bin/false")  # the S3 server dies at once
    local = LocalServices(tmp_path, stop_grace_s=1.0)
    with pytest.raises(Exception, match="SeaweedFS"):
        local.up()
    assert local.state() is None
    leftover = subprocess.run(["pgrep", "-f", f"--dir {tmp_path}/redis"], capture_output=True, check=False)
    assert leftover.stdout == b""


def test_a_postgres_that_fails_to_start_leaves_nothing_running(tmp_path, monkeypatch):
    """`services up --postgres` where PostgreSQL dies at once: one error, Redis and S3 stopped again."""
    from bookwarm.services import postgres

    fake_bin = tmp_path / "pgbin"
    fake_bin.mkdir()
    for name in ("initdb", "postgres"):
        (fake_bin / name).write_text("#!/bin/sh\nexit 1\n")
        (fake_bin / name).chmod(0o755)
    monkeypatch.setattr(postgres, "bin_dir", lambda: fake_bin)
    local = LocalServices(tmp_path / "home", stop_grace_s=1.0)
    with pytest.raises(Exception, match="initdb failed"):
        local.up(postgres=True)
    assert local.state() is None
    for what in ("redis", "s3"):
        leftover = subprocess.run(
            ["pgrep", "-f", f"{tmp_path}/home/{what}"], capture_output=True, check=False
        )
        assert leftover.stdout == b"", what


def test_embedded_prefect_server_keeps_its_data_and_ui_address_local(tmp_path):
    """The embedded Prefect server's database lives in the services folder (never ~/.prefect, where
    every run would share and grow one database) and its UI talks to its own port, not 4200."""
    import httpx

    local = LocalServices(tmp_path, stop_grace_s=2.0)
    try:
        state = local.up(with_prefect=True)
        ui = httpx.get(f"http://127.0.0.1:{state.prefect_port}/ui-settings", timeout=10).json()
        assert ui["api_url"] == f"http://127.0.0.1:{state.prefect_port}/api"
        assert (tmp_path / "prefect" / "prefect.db").exists()
    finally:
        local.down()
    assert not pid_alive(state.prefect_pid)


def test_up_restarts_only_what_died_on_its_port_with_its_credentials_and_data(tmp_path):
    """A killed Redis comes back with job records, dead letters, markers and quota counters (its
    append-only file); a killed S3 server with its objects; the live one is left alone."""
    local = LocalServices(tmp_path, stop_grace_s=2.0)
    first = local.up()
    try:
        client = redis.Redis(port=first.redis_port)
        client.hset("warming:job:j1", mapping={"status": "running", "warmed": 3})
        client.hset("warming:job:j1:dead", "ann-leckie", '{"reason": "x"}')
        client.set("warming:processed:ann-leckie", '{"depth": 0}')
        client.incrby("limits:quota:isbndb:2026-11-29", 7)
        client.close()
        store = ObjectStore(resolve(first.env()).s3)
        store.ensure_bucket()
        store.put_bytes_sync("uploads/kept.csv", b"Title,Author\n")
        store.close()

        _kill(first.redis_pid)
        second = local.up()
        assert second.redis_pid != first.redis_pid and second.redis_port == first.redis_port
        assert second.s3_pid == first.s3_pid  # alive: not restarted
        client = redis.Redis(port=second.redis_port)
        assert client.hget("warming:job:j1", "warmed") == b"3"
        assert client.hexists("warming:job:j1:dead", "ann-leckie")
        assert client.exists("warming:processed:ann-leckie")
        assert client.get("limits:quota:isbndb:2026-11-29") == b"7"
        client.close()

        _kill(first.s3_pid)
        third = local.up()
        assert third.s3_pid != first.s3_pid and third.s3_port == first.s3_port
        assert (third.access_key, third.secret_key) == (first.access_key, first.secret_key)
        assert third.redis_pid == second.redis_pid
        store = ObjectStore(resolve(third.env()).s3)
        assert store.get_bytes_sync("uploads/kept.csv") == b"Title,Author\n"
        store.close()
    finally:
        local.down()


def _kill(pid: int) -> None:
    """SIGKILL, then wait until the process is gone (reaped), as a crash leaves it."""
    import signal
    import time

    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} survived SIGKILL"
        time.sleep(0.02)


def test_status_needs_only_redis(services, tmp_path):
    """The job record lives in Redis: `bookwarm status` answers while the object store is down."""
    client = redis.Redis(port=services.redis_port)
    client.hset("st:warming:job:job-1", mapping={"job_id": "job-1", "status": "completed", "warmed": 4})
    client.close()
    env = {
        **os.environ,
        **services.env(),
        "BOOKWARM_HOME": str(tmp_path),
        "BOOKWARM_REDIS_PREFIX": "st:",
        "BOOKWARM_S3_ENDPOINT": "127.0.0.1:9",  # nothing listens there
    }
    result = subprocess.run(
        [sys.executable, "-m", "bookwarm", "status", "job-1", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"authors_warmed": 4' in result.stdout and '"status": "completed"' in result.stdout
