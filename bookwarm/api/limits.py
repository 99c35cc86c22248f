"""Requests refused before any route sees them: a query string longer than any this API takes
(414, one JSON line). Past uvicorn's own limit (h11's 16 KB request head) the server refuses the
request itself, with a 400 of its own, and goes on serving."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

MAX_QUERY_BYTES = 4096  # a title and an author name, percent-encoded, with room to spare

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class RequestLimits:
    """Pure ASGI (no per-request objects for the requests it lets through: the hot path stays lean)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
            body = json.dumps({"error": f"query string over {MAX_QUERY_BYTES} bytes", "status": 414}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 414,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
