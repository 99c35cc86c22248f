"""The aiohttp transport under httpx, against a real HTTP server on loopback: what httpx users rely
on (query strings, headers, status, decoding, redirects left alone) and httpx's own errors."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from bookwarm.providers.transport import AiohttpTransport
from tests.fakes.certificates import server_context

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the server fixture runs on the session loop


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[tuple[str, int]]]]:
    seen: list[tuple[str, int]] = []  # the client's address and port of every request: its connection

    async def echo(request: web.Request) -> web.Response:
        seen.append(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        body = json.dumps({"query": dict(request.query), "agent": request.headers.get("User-Agent")})
        return web.Response(text=body, content_type="application/json", headers={"Retry-After": "7"})

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(b'{"ok": true}'),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/echo")

    app = web.Application()
    app.add_routes(
        [web.get("/echo", echo), web.get("/gzip", gzipped), web.get("/slow", slow), web.get("/moved", moved)]
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def client(base_url: str, timeout: float = 5.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"User-Agent": "bookwarm-test (ops@example.org)"},
        timeout=httpx.Timeout(timeout),
        transport=AiohttpTransport(max_connections=4, keepalive_s=4.0),
    )


async def test_query_headers_and_status_reach_both_ends(server):
    base, seen = server
    async with client(base) as http:
        response = await http.get("/echo", params={"q": 'inauthor:"Ursula K. Le Guin"', "limit": 40})
    assert response.status_code == 200
    assert response.json() == {
        "query": {"q": 'inauthor:"Ursula K. Le Guin"', "limit": "40"},
        "agent": "bookwarm-test (ops@example.org)",
    }
    assert response.headers["retry-after"] == "7"  # what the retry layer reads on a 429
    assert len(seen) == 1


async def test_a_gzip_body_is_decoded_once(server):
    async with client(server[0]) as http:
        response = await http.get("/gzip")
    assert response.json() == {"ok": True}


async def test_redirects_are_returned_not_followed(server):
    async with client(server[0]) as http:
        response = await http.get("/moved")
    assert response.status_code == 302 and response.headers["location"] == "/echo"


async def test_a_slow_answer_is_httpx_read_timeout(server):
    async with client(server[0], timeout=0.3) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get("/slow")


async def test_a_closed_port_is_httpx_connect_error():
    with socket.socket() as s:  # a port that was free a moment ago and has no listener now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with client(f"http://127.0.0.1:{port}") as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("/echo")


async def test_connections_are_reused_and_capped(server):
    base, seen = server
    async with client(base) as http:
        await asyncio.gather(*(http.get("/echo", params={"i": i}) for i in range(40)))
    assert len(seen) == 40 and 1 <= len(set(seen)) <= 4


async def test_a_certificate_no_trusted_authority_signed_is_refused(tmp_path):
    """TLS is verified against certifi's bundle, as httpx's own transport does: a self-signed
    certificate ends the call as httpx.ConnectError, not as a quiet success."""
    context, _ = server_context(tmp_path)

    async def echo(request: web.Request) -> web.Response:
        return web.Response(text="{}")

    app = web.Application()
    app.add_routes([web.get("/echo", echo)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with client(f"https://127.0.0.1:{port}") as http:
            with pytest.raises(httpx.ConnectError):
                await http.get("/echo")
    finally:
        await runner.cleanup()
