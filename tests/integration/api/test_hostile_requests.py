"""Hostile requests to a real `bookwarm api`: each is refused with a 4xx and one JSON error, never a
500 or a traceback, and nothing of it reaches Redis or the API's log."""

from __future__ import annotations

import asyncio

import pytest

from bookwarm.cache.redis_client import make_redis
from tests.integration.api.conftest import Api

MARK = "Qx7Mark"  # in every hostile value: searched for afterwards

HOSTILE = [
    ("GET", f"/v1/authors/={MARK}(1)"),
    ("GET", f"/v1/authors/@{MARK}"),
    ("GET", f"/v1/authors/{MARK}|calc"),
    ("GET", f"/v1/authors/{MARK}%00x"),
    ("GET", f"/v1/authors/{MARK}%0Aline"),
    ("GET", f"/v1/authors/{MARK}%1B[31m"),
    ("GET", f"/v1/authors/{MARK}" + "a" * 400),
    ("GET", f"/v1/authors/..%2F..%2F{MARK}"),
    ("GET", f"/v1/authors/../../{MARK}"),
    ("GET", "/v1/authors/%2E%2E"),
    ("GET", f"/v1/authors/{MARK}/completeness/x"),
    ("GET", f"/v1/isbn/978{MARK}"),
    ("GET", "/v1/isbn/9780441478126"),  # checksum
    ("GET", "/v1/isbn/" + "9" * 400),
    ("GET", f"/v1/search?title=={MARK}(1)"),
    ("GET", f"/v1/search?title={MARK}" + "b" * 5000),
    ("GET", f"/v1/search?title=Dune&author=={MARK}"),
    ("POST", f"/v1/authors/{MARK}"),
    ("DELETE", f"/v1/isbn/{MARK}"),
    ("GET", f"/v2/{MARK}"),
]


@pytest.mark.parametrize(("method", "path"), HOSTILE)
def test_a_hostile_request_is_one_json_4xx(api: Api, method: str, path: str):
    with api.client() as client:
        answer = client.request(method, path)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    body = answer.json()
    assert set(body) == {"error", "status"} and body["status"] == answer.status_code, body
    assert "\n" not in body["error"] and MARK not in answer.text and "Traceback" not in answer.text


def test_a_huge_query_string_is_414_and_one_past_the_server_s_limit_leaves_it_serving(api: Api):
    import socket
    from urllib.parse import urlsplit

    with api.client() as client:
        long = client.get("/v1/search", params={"title": MARK + "c" * 10_000})
    assert long.status_code == 414 and set(long.json()) == {"error", "status"} and MARK not in long.text

    where = urlsplit(api.url)  # past uvicorn's 16 KB request head (httpx would not build it): a socket
    request = f"GET /v1/search?title={MARK}{'c' * 200_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    with socket.create_connection((where.hostname, where.port), timeout=10) as conn:
        try:
            conn.sendall(request)
            answer = conn.recv(65536)
        except ConnectionResetError:  # refused before it was all sent
            answer = b""
    assert MARK.encode() not in answer and not answer.startswith(b"HTTP/1.1 5")
    with api.client() as client:
        assert client.get("/health").status_code == 200


def test_nothing_of_a_hostile_request_reaches_redis_or_the_log(api: Api):
    with api.client() as client:
        for method, path in HOSTILE:
            client.request(method, path)

    async def keys_and_values() -> list[bytes]:
        client = make_redis(api.settings.redis.url)
        try:
            found: list[bytes] = []
            async for key in client.scan_iter(match=f"{api.settings.redis.key_prefix}*"):
                found.append(key)
                kind = await client.type(key)
                if kind == b"zset":
                    found += [m for m, _ in await client.zrange(key, 0, -1, withscores=True)]
                elif kind == b"hash":
                    found += [*(await client.hgetall(key)).keys(), *(await client.hgetall(key)).values()]
            return found
        finally:
            await client.aclose()

    stored = asyncio.run(keys_and_values())
    assert stored and not [v for v in stored if MARK.lower().encode() in v.lower()]
    log = api.env["BOOKWARM_HOME"] + "/api.log"
    from pathlib import Path

    assert MARK not in Path(log).read_text(errors="replace")
