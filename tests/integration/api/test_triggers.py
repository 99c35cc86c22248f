"""The triggers of a real `bookwarm api`: uploads and named authors become deployment runs in
Prefect (the session's server, with bookwarm's deployments registered and nobody running them),
job status from Redis, API keys (none, wrong, right; never logged), and per-client rate limits."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bookwarm.api.access import new_key
from bookwarm.cache.objectstore import ObjectStore
from bookwarm.services.process import stop
from bookwarm.settings import resolve
from tests.conftest import PROJECT
from tests.integration.api.conftest import Api, start_api

LIBRARY = PROJECT / "examples" / "library.csv"


@pytest.fixture(scope="module")
def keyed(services, prefect_api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, str]]:
    """An API with one key, pointed at the session's Prefect server, bookwarm's deployments on it."""
    from deployments.serve import build_deployments

    built = build_deployments()  # outside an event loop: in one, Prefect hands back coroutines

    async def register() -> None:
        for deployment in built:
            await deployment.apply()

    asyncio.run(register())
    key, digest = new_key()
    home = tmp_path_factory.mktemp("keyed")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BOOKWARM_", "PREFECT_API_URL"))},
        **services.env(),
        "PREFECT_API_URL": prefect_api,
        "BOOKWARM_HOME": str(home),
        "BOOKWARM_REDIS_PREFIX": f"keyed{os.getpid()}:",
        "BOOKWARM_API_KEY_HASHES": f"{'0' * 64},{digest}",
        "BOOKWARM_API_CLIENT_RPS": "0",
        "BOOKWARM_MAX_UPLOAD_MB": "0.05",
    }
    url, proc = start_api(env, home / "api.log")
    try:
        yield Api(url, resolve(env), env, proc), key
    finally:
        stop(proc.pid, 5.0)


def flow_run(api_url: str, run_id: str) -> dict:
    return httpx.get(f"{api_url}/flow_runs/{run_id}", timeout=10).json()


def uploads(api: Api) -> set[str]:
    store = ObjectStore(api.settings.s3)
    try:
        store.ensure_bucket()
        return set(store.list_names(api.settings.ingest.uploads_prefix))
    finally:
        store.close()


def test_writes_need_a_key_and_a_wrong_one_is_401_and_never_logged(keyed, prefect_api):
    api, key = keyed
    wrong = "bw_" + "x" * 43
    with api.client() as client:
        none = client.post("/v1/warm", json={"names": ["Neil Gaiman"]})
        bad = client.post(
            "/v1/warm", json={"names": ["Neil Gaiman"]}, headers={"Authorization": f"Bearer {wrong}"}
        )
        basic = client.post(
            "/v1/warm", json={"names": ["Neil Gaiman"]}, headers={"Authorization": f"Basic {wrong}"}
        )
        read = client.get("/v1/authors/Neil Gaiman", params={"wait": 0})  # reads are open here
    for answer in (none, bad, basic):
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer", answer.text
        assert set(answer.json()) == {"error", "status"} and wrong not in answer.text
    assert read.status_code in (200, 202, 404)
    log = Path(api.env["BOOKWARM_HOME"], "api.log").read_text(errors="replace")
    assert wrong not in log and key not in log


def test_an_upload_is_stored_and_becomes_a_warm_library_run(keyed, prefect_api):
    api, key = keyed
    data = LIBRARY.read_bytes()
    with api.client(headers={"Authorization": f"Bearer {key}"}) as client:
        answer = client.post(
            "/v1/uploads",
            content=data,
            headers={"Content-Type": "text/csv"},
            params={"max_depth": 1, "name": "mine.csv"},
        )
        assert answer.status_code == 202, answer.text
        body = answer.json()
        run = flow_run(prefect_api, body["job_id"])
        assert run["parameters"]["source"] == body["source"] and run["parameters"]["max_depth"] == 1
        assert body["source"].startswith(
            f"s3://{api.settings.s3.bucket}/{api.settings.ingest.uploads_prefix}"
        )
        key_name = body["source"].split("/", 3)[3]
        store = ObjectStore(api.settings.s3)
        try:
            assert store.get_bytes_sync(key_name) == data
        finally:
            store.close()
        assert answer.headers["location"] == f"/v1/jobs/{body['job_id']}" and body["authors"] > 0


def test_bad_uploads_are_refused_in_one_line_and_nothing_is_stored(keyed):
    api, key = keyed
    before = uploads(api)
    with api.client(headers={"Authorization": f"Bearer {key}"}) as client:
        wrong_type = client.post(
            "/v1/uploads", content=b"a,b\n", headers={"Content-Type": "application/json"}
        )
        too_big = client.post(
            "/v1/uploads", content=b"Title,Author\n" + b"x,y\n" * 20_000, headers={"Content-Type": "text/csv"}
        )
        no_author = client.post(
            "/v1/uploads", content=b"colour,size\nred,3\n", headers={"Content-Type": "text/csv"}
        )
        bad_name = client.post(
            "/v1/uploads",
            content=LIBRARY.read_bytes(),
            headers={"Content-Type": "text/csv"},
            params={"name": "../x"},
        )
    assert wrong_type.status_code == 415
    assert too_big.status_code == 413
    assert no_author.status_code == 400 and "author" in no_author.json()["error"]
    assert bad_name.status_code == 422
    for answer in (wrong_type, too_big, no_author, bad_name):
        assert set(answer.json()) == {"error", "status"}
    assert uploads(api) == before


def test_named_authors_become_a_run_and_hostile_names_are_refused(keyed, prefect_api):
    api, key = keyed
    with api.client(headers={"Authorization": f"Bearer {key}"}) as client:
        answer = client.post("/v1/warm", json={"names": ["Neil Gaiman", "Terry Pratchett"], "max_depth": 0})
        hostile = client.post("/v1/warm", json={"names": ["=cmd|' /C calc'!A0"]})
        too_deep = client.post("/v1/warm", json={"names": ["Neil Gaiman"], "max_depth": 9})
    assert answer.status_code == 202, answer.text
    run = flow_run(prefect_api, answer.json()["job_id"])
    assert (
        run["parameters"]["names"] == ["Neil Gaiman", "Terry Pratchett"]
        and run["parameters"]["max_depth"] == 0
    )
    assert hostile.status_code == 422 and "calc" not in hostile.text
    assert too_deep.status_code == 422


def test_a_job_s_status_is_read_from_redis(keyed):
    from bookwarm.cache.redis_client import make_redis
    from bookwarm.keys import Keys
    from bookwarm.warming.jobs import JobStore

    api, _ = keyed
    job_id = str(uuid.uuid4())
    authors = [
        {"name": "Neil Gaiman", "key": "neil-gaiman"},
        {"name": "Terry Pratchett", "key": "terry-pratchett"},
    ]

    async def start() -> None:
        client = make_redis(api.settings.redis.url)
        try:
            await JobStore(client, Keys(api.settings.redis.key_prefix), 3600).start(
                job_id, source="s3://b/uploads/x.csv", max_depth=1, authors=authors, force=False
            )
        finally:
            await client.aclose()

    asyncio.run(start())
    with api.client() as client:
        found = client.get(f"/v1/jobs/{job_id}")
        missing = client.get(f"/v1/jobs/{uuid.uuid4()}")
        bad = client.get("/v1/jobs/not-a-job")
    assert (
        found.status_code == 200 and found.json()["authors_queued"] == 2 and found.json()["job_id"] == job_id
    )
    assert missing.status_code == 404 and bad.status_code == 422


def test_a_client_in_a_storm_gets_429s_and_another_is_not_starved(services, tmp_path):
    """Reads keyed, one request a second and a burst of 3 per client."""
    storm, storm_hash = new_key()
    calm, calm_hash = new_key()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BOOKWARM_", "PREFECT_API_URL"))},
        **services.env(),
        "BOOKWARM_HOME": str(tmp_path),
        "BOOKWARM_API_KEY_HASHES": f"{storm_hash},{calm_hash}",
        "BOOKWARM_API_READS_NEED_KEY": "1",
        "BOOKWARM_API_CLIENT_RPS": "1",
        "BOOKWARM_API_CLIENT_BURST": "3",
    }
    url, proc = start_api(env, tmp_path / "api.log")
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            anonymous = client.get("/v1/search", params={"title": "Dune"})  # reads need a key here
            stormy = [
                client.get(
                    "/v1/search", params={"title": "Dune"}, headers={"Authorization": f"Bearer {storm}"}
                ).status_code
                for _ in range(10)
            ]
            limited = client.get(
                "/v1/search", params={"title": "Dune"}, headers={"Authorization": f"Bearer {storm}"}
            )
            other = client.get(
                "/v1/search", params={"title": "Dune"}, headers={"Authorization": f"Bearer {calm}"}
            )
    finally:
        stop(proc.pid, 5.0)
    assert anonymous.status_code == 401
    assert stormy[:3] == [200, 200, 200] and 429 in stormy[3:]
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert set(limited.json()) == {"error", "status"}
    assert other.status_code == 200
