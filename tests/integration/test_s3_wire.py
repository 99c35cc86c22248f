"""The cold tier's wire (cache/s3_wire.py) against the real local store: what it signs is what the
store checks, what minio's client writes it reads (and back), an overloaded store is retried and a
lasting failure is one CacheError."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid

import pytest

from bookwarm.cache.objectstore import ObjectStore
from bookwarm.errors import CacheError
from bookwarm.services.process import free_port
from bookwarm.tls import system_tls_context
from tests.fakes.certificates import server_context
from tests.fakes.refusing_s3 import refusing_s3

KEYS = (
    "plain",
    "with space",
    "plus+and=equals",
    "tilde~dash-under_dot.",
    "ünïcødé/日本",
    "percent%25sign",
    "a;b,c",
)


def test_objects_round_trip_under_keys_that_need_encoding(settings) -> None:
    store = ObjectStore(settings.s3)
    store.ensure_bucket()
    prefix = f"tests/wire/{uuid.uuid4()}"

    async def run() -> None:
        for i, name in enumerate(KEYS):
            key = f"{prefix}/{name}.json"
            await store.put_json(key, {"i": i, "name": name})
            assert await store.get_json(key) == {"i": i, "name": name}
            assert json.loads(store.get_bytes_sync(key) or b"null") == {
                "i": i,
                "name": name,
            }  # minio's client finds the same object
        store.put_bytes_sync(f"{prefix}/from-minio.json", b'{"by": "minio"}', "application/json")
        assert await store.get_raw(f"{prefix}/from-minio.json") == b'{"by": "minio"}'
        assert await store.get_raw(f"{prefix}/missing.json") is None
        await store.ping()
        await store.aclose()

    asyncio.run(run())
    assert sorted(store.list_names(prefix)) == sorted(
        [f"{prefix}/{name}.json" for name in KEYS] + [f"{prefix}/from-minio.json"]
    )


def test_an_overloaded_store_is_retried_and_the_region_asked_once(settings) -> None:
    key = f"tests/wire/{uuid.uuid4()}.json"
    path = f"/{settings.s3.bucket}/{key}"
    slow = {path: 2}
    seen: list[str] = []
    with refusing_s3(settings.s3.endpoint, set(), slow, seen) as endpoint:
        store = ObjectStore(dataclasses.replace(settings.s3, endpoint=endpoint, region=None))

        async def run() -> object:
            await store.put_json(key, {"kept": True})  # two 503s, then the store takes it
            value = await store.get_json(key)
            await store.aclose()
            return value

        assert asyncio.run(run()) == {"kept": True}
    assert seen.count(f"PUT {path}") == 3
    assert seen.count(f"GET {path}") == 1
    assert [s for s in seen if "location" in s] == [f"GET /{settings.s3.bucket}?location="]
    assert seen[0] == f"GET /{settings.s3.bucket}?location="


def test_a_store_that_stays_overloaded_is_one_cache_error(settings) -> None:
    key = f"tests/wire/{uuid.uuid4()}.json"
    path = f"/{settings.s3.bucket}/{key}"
    seen: list[str] = []
    with refusing_s3(settings.s3.endpoint, set(), {path: 100}, seen) as endpoint:
        store = ObjectStore(dataclasses.replace(settings.s3, endpoint=endpoint, region="us-east-1"))

        async def run() -> None:
            try:
                await store.put_json(key, {"kept": False})
            finally:
                await store.aclose()

        with pytest.raises(CacheError) as caught:
            asyncio.run(run())
    message = str(caught.value)
    assert "SlowDown" in message and f"write {key}" in message, message
    assert settings.s3.secret_key is not None and settings.s3.secret_key.get_secret_value() not in message
    assert seen == [f"PUT {path}"] * 4  # one try and three retries; a configured region is not asked


def test_a_bucket_not_created_yet_is_a_store_that_answers(settings) -> None:
    """The read API starts before any warm has created the bucket: its health check says the store
    is up, and a read there is a miss (nothing was written yet), not an error."""
    store = ObjectStore(dataclasses.replace(settings.s3, bucket=f"not-yet-{uuid.uuid4().hex[:12]}"))

    async def run() -> tuple[object, object]:
        await store.ping()
        try:
            return await store.get_raw("authors/x.json"), await store.get_json("isbn/x.json")
        finally:
            await store.aclose()

    assert asyncio.run(run()) == (None, None)


def test_a_store_that_is_down_is_a_cache_error(settings) -> None:
    store = ObjectStore(dataclasses.replace(settings.s3, endpoint=f"127.0.0.1:{free_port()}", region=None))

    async def run() -> list[BaseException | object]:
        results = await asyncio.gather(store.get_raw("authors/x.json"), store.ping(), return_exceptions=True)
        await store.aclose()
        return results

    read, ping = asyncio.run(run())
    for failure in (read, ping):
        assert isinstance(failure, CacheError), failure
        assert "ClientConnectorError" in str(failure) or "ClientOSError" in str(failure), failure


def test_tls_is_verified_against_the_systems_trust(settings, tmp_path, monkeypatch) -> None:
    """A store on HTTPS is trusted as minio's urllib3 pool trusted it: the system's CA store, which
    SSL_CERT_FILE extends. A certificate no trusted authority signed is refused, not used quietly."""
    context, authority = server_context(tmp_path)
    key = f"tests/wire/{uuid.uuid4()}.json"
    seen: list[str] = []
    with refusing_s3(settings.s3.endpoint, set(), seen=seen, tls=context) as endpoint:
        over_tls = dataclasses.replace(settings.s3, endpoint=f"https://{endpoint}", secure=True)

        async def round_trip() -> object:
            store = ObjectStore(over_tls)
            try:
                await store.put_json(key, {"over": "tls"})
                return await store.get_json(key)
            finally:
                await store.aclose()

        system_tls_context.cache_clear()
        with pytest.raises(CacheError, match="ClientConnectorCertificateError"):
            asyncio.run(round_trip())
        assert seen == []  # refused before a request was sent

        monkeypatch.setenv("SSL_CERT_FILE", str(authority))
        system_tls_context.cache_clear()
        try:
            assert asyncio.run(round_trip()) == {"over": "tls"}
        finally:
            monkeypatch.delenv("SSL_CERT_FILE")
            system_tls_context.cache_clear()
    assert f"PUT /{settings.s3.bucket}/{key}" in seen
