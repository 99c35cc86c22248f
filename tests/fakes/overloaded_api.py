"""A reverse proxy in front of a real Prefect API that answers 503, as an overloaded server does,
to the first N creations of a subflow (``POST /api/task_runs/``), and with ``refuse_run_reads``
422 to every read of flow runs (``POST /api/flow_runs/filter``), as Prefect does to a read of more
than 200, and with ``broken_run_creation`` 500 to every creation of a flow run (a server whose
database is down). With ``hold_job_completion`` it parks the first flow run's (the job's) proposal of
Completed until ``release_completion`` is set (``completion_held`` says it arrived): the moment a job
has ended but its process has not; ``hold_completion_named`` does the same to the runs of that name
(a shard whose work is done, its run not yet ended). Everything else goes through.

Its websocket (events) is not proxied: events are dropped, which the runs tolerate, as they do when
a real server sheds them. The tests read what happened from Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class OverloadedApi:
    def __init__(
        self,
        upstream: str,
        fail_first: int = 0,
        *,
        refuse_run_reads: bool = False,
        broken_run_creation: bool = False,
        hold_job_completion: bool = False,
        hold_completion_named: str | None = None,
    ) -> None:
        from bookwarm.services.process import free_port

        self.upstream = upstream.rstrip("/")
        self.fail_first = fail_first
        self.refuse_run_reads = refuse_run_reads
        self.broken_run_creation = broken_run_creation
        self.hold_job_completion = hold_job_completion
        self.completion_held = threading.Event()
        self.release_completion = threading.Event()
        self.hold_completion_named = hold_completion_named
        self._first_run: str | None = None
        self._held_runs: set[str] = set()
        self.held_run_ids: list[str] = []
        self.refused = 0
        self.failed = 0
        self.port = free_port()
        app = Starlette(
            routes=[Route("/{path:path}", self.forward, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])]
        )
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    async def forward(self, request: Request) -> Response:
        path = request.url.path.removeprefix("/api")
        if request.method == "POST" and path == "/task_runs/" and self.failed < self.fail_first:
            self.failed += 1
            return JSONResponse({"exception_message": "Service Unavailable"}, status_code=503)
        if request.method == "POST" and path == "/flow_runs/" and self.broken_run_creation:
            # as a server whose database went away answers (its message, which may name the database)
            return JSONResponse(
                {"exception_message": "Internal Server Error: db-secret-dsn"}, status_code=500
            )
        if request.method == "POST" and path == "/flow_runs/filter" and self.refuse_run_reads:
            self.refused += 1
            return JSONResponse(
                {"detail": "limit: Input should be less than or equal to 200"}, status_code=422
            )
        if request.method == "PATCH" and path.startswith("/flow_runs/") and path.count("/") == 2:
            self._note_name(path.split("/")[2], await request.body())  # a run named once it started
        run_id = path.split("/")[2] if path.startswith("/flow_runs/") and path.endswith("/set_state") else ""
        if (
            request.method == "POST"
            and run_id in self._held_runs
            and json.loads(await request.body())["state"]["type"] == "COMPLETED"
        ):
            self.held_run_ids.append(run_id)
            self.completion_held.set()
            await asyncio.to_thread(self.release_completion.wait, 120)
        async with httpx.AsyncClient(timeout=60) as client:
            upstream = await client.request(
                request.method,
                f"{self.upstream}{path}",
                params=request.query_params,
                content=await request.body(),
                headers={
                    k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
                },
            )
        if request.method == "POST" and path == "/flow_runs/" and upstream.is_success:
            run_id = upstream.json()["id"]
            if self._first_run is None:
                self._first_run = run_id
                if self.hold_job_completion:
                    self._held_runs.add(run_id)
            self._note_name(run_id, await request.body())
        headers = {
            k: v
            for k, v in upstream.headers.items()
            if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")
        }
        return Response(upstream.content, status_code=upstream.status_code, headers=headers)

    def _note_name(self, run_id: str, body: bytes) -> None:
        with contextlib.suppress(ValueError, AttributeError):
            if self.hold_completion_named and json.loads(body).get("name") == self.hold_completion_named:
                self._held_runs.add(run_id)

    def __enter__(self) -> OverloadedApi:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release_completion.set()
        self._server.should_exit = True
        self._thread.join(timeout=10)
