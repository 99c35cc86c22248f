"""A local Gemini `generateContent` endpoint in the real response format, for tests and the benchmark.

It "reads" each prompt line ("N: text") with simple rules (CSV row with a title and an author,
"Title by Author", "Author - Title") and answers the JSON list the structured-output schema asks for.
Faults are set per server: an error body from the real fixtures, latency, dropped or invented rows,
a safety block on a row, malformed JSON once, truncation over an output-token budget.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ISBN = re.compile(r"\b(97[89][\d-]{10,14}|\d{9}[\dXx])\b")


@dataclass
class GeminiFaults:
    error_body: dict[str, Any] | None = None  # answered with its error.code status
    errors_before_success: int = 0  # that many error answers, then normal ones (429 retry tests)
    latency_s: float = 0.0
    drop_rows: set[int] = field(default_factory=set)
    invent_rows: set[int] = field(default_factory=set)
    safety_on_row: int | None = None
    malformed_answers: int = 0
    max_output_chars: int | None = None  # emulate the 8,192-token cap: truncate and say MAX_TOKENS
    calls: int = 0
    keys_seen: set[str] = field(default_factory=set)


def read_line(text: str) -> tuple[str, list[str], str] | None:
    """(title, authors, isbn) from one messy line, or None for headers and blanks."""
    isbn_match = ISBN.search(text)
    isbn = isbn_match.group(1) if isbn_match else ""
    plain = ISBN.sub("", text).strip(" ,;\t")
    if not plain or plain.lower().startswith(("titre", "title", "titel", "book", "#")):
        return None
    if " by " in plain:
        title, author = plain.rsplit(" by ", 1)
    elif " - " in plain:
        author, title = plain.split(" - ", 1)
    else:
        cells = [c.strip() for c in re.split(r"[;,\t|]", plain) if c.strip()]
        if len(cells) < 2:
            return None
        title, author = cells[0], cells[1]
    authors = [a.strip() for a in re.split(r"\s*&\s*|\s+and\s+", author) if a.strip()]
    return title.strip(" \"'"), authors, isbn


def build_app(faults: GeminiFaults) -> Starlette:
    async def generate(request: Request) -> JSONResponse:
        faults.calls += 1
        faults.keys_seen.add(request.headers.get("x-goog-api-key", ""))
        body = await request.json()
        if faults.latency_s:
            await asyncio.sleep(faults.latency_s)
        if faults.error_body is not None and (
            faults.errors_before_success == 0 or faults.calls <= faults.errors_before_success
        ):
            return JSONResponse(faults.error_body, status_code=faults.error_body["error"]["code"])
        prompt = "".join(p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", []))
        rows = []
        for line in prompt.splitlines():
            number, _, text = line.partition(": ")
            if not number.isdigit():
                continue
            row = int(number)
            if row == faults.safety_on_row:
                return JSONResponse(_answer("", "SAFETY"))
            parsed = read_line(text)
            if parsed and row not in faults.drop_rows:
                rows.append({"row": row, "title": parsed[0], "authors": parsed[1], "isbn": parsed[2]})
        rows += [
            {"row": r, "title": "Invented Book", "authors": ["Nobody"], "isbn": ""}
            for r in faults.invent_rows
        ]
        faults.invent_rows = set()
        text = json.dumps(rows)
        if faults.malformed_answers > 0:
            faults.malformed_answers -= 1
            return JSONResponse(_answer(text[: len(text) // 2], "STOP"))
        if faults.max_output_chars and len(text) > faults.max_output_chars:
            return JSONResponse(_answer(text[: faults.max_output_chars], "MAX_TOKENS"))
        return JSONResponse(_answer(text, "STOP"))

    return Starlette(routes=[Route("/{version}/models/{model}:generateContent", generate, methods=["POST"])])


def _answer(text: str, finish: str) -> dict[str, Any]:
    return {
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": finish}],
        "usageMetadata": {
            "promptTokenCount": 100,
            "candidatesTokenCount": len(text) // 4,
            "totalTokenCount": 100 + len(text) // 4,
        },
        "modelVersion": "gemini-2.5-flash",
    }


class GeminiServer:
    """Runs the app with uvicorn in a background thread on a free loopback port."""

    def __init__(self, faults: GeminiFaults | None = None) -> None:
        from bookwarm.services.process import free_port

        self.faults = faults or GeminiFaults()
        self.port = free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(build_app(self.faults), host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self, faults: GeminiFaults | None = None) -> GeminiFaults:
        new = faults or GeminiFaults()
        self.faults.__dict__.update(new.__dict__)
        return self.faults

    def __enter__(self) -> GeminiServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
