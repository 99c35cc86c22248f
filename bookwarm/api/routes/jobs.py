"""The triggers (the original system's upload, warm and status) through Prefect: `POST /v1/uploads`
starts a `warm-library` run over an uploaded export, `POST /v1/warm` a `warm-popular-authors` run
over named authors, `GET /v1/jobs/{id}` reads a job's counts. Runs are created through Prefect's
API, so the Prefect UI stays the job-status and dead-letter view. Writes need an API key."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from bookwarm.api.dependencies import Config, Ctx, Reader, Writer
from bookwarm.api.errors import HttpProblem, problem
from bookwarm.api.prefect_runs import create_run
from bookwarm.parsing.ingest import parse_library
from bookwarm.sources import upload_bytes
from bookwarm.warming.status import job_status
from flows.params import JOB_ID_PATTERN, NamedMaxDepth, PersonNames

router = APIRouter(prefix="/v1", tags=["jobs"])

EXPORT_TYPES = frozenset(
    {"text/csv", "text/plain", "text/tab-separated-values", "application/csv", "application/octet-stream"}
)
FILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,119}$"


class WarmRequest(BaseModel):
    names: PersonNames
    max_depth: NamedMaxDepth = 1


def _accepted(run: dict[str, str], **more: Any) -> JSONResponse:
    return JSONResponse(
        {
            "job_id": run["id"],
            "run": run["name"],
            "status_url": f"/v1/jobs/{run['id']}",
            "prefect_ui": run["ui"],
            **more,
        },
        status_code=202,
        headers={"Location": f"/v1/jobs/{run['id']}"},
    )


@router.post(
    "/uploads", dependencies=[Writer], status_code=202, summary="Warm a library export (the request body)"
)
async def upload(
    request: Request,
    ctx: Ctx,
    config: Config,
    max_depth: Annotated[int, Query(ge=1, le=3, description="co-author levels")] = 2,
    name: Annotated[
        str, Query(pattern=FILE_NAME, description="the file's name, for the record")
    ] = "library.csv",
) -> JSONResponse:
    """The body is the export as the app exported it (CSV or TSV), at most BOOKWARM_MAX_UPLOAD_MB:
    checked as `bookwarm upload` checks it, stored in the uploads prefix, then a `warm-library` run."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in EXPORT_TYPES:
        raise HttpProblem(415, f"send the export as one of: {', '.join(sorted(EXPORT_TYPES))}")
    cap = int(config.ingest.max_upload_mb * 1024 * 1024)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise HttpProblem(413, f"over the {cap:,} byte limit (BOOKWARM_MAX_UPLOAD_MB)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise HttpProblem(413, f"over the {cap:,} byte limit (BOOKWARM_MAX_UPLOAD_MB)")
    data = bytes(body)
    parsed = await asyncio.to_thread(
        parse_library,
        data,
        max_bytes=cap,
        warm_roles=config.warm_roles,
        max_authors=config.ingest.max_job_authors,
        label="the upload",
    )
    await asyncio.to_thread(ctx.cold.ensure_bucket)
    source = await asyncio.to_thread(upload_bytes, name, data, ctx.cold, config.ingest.uploads_prefix)
    run = await create_run("warm-library/warm-library", {"source": source, "max_depth": max_depth})
    return _accepted(run, source=source, format=parsed.format, authors=len(parsed.authors))


@router.post(
    "/warm", dependencies=[Writer], status_code=202, summary="Warm named authors (and their co-authors)"
)
async def warm(request: WarmRequest) -> JSONResponse:
    run = await create_run(
        "warm-popular-authors/warm-popular-authors", {"names": request.names, "max_depth": request.max_depth}
    )
    return _accepted(run, authors=len(request.names))


@router.get("/jobs/{job_id}", dependencies=[Reader], summary="A job's counts, dead letters and review list")
async def job(job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN)], ctx: Ctx, config: Config) -> JSONResponse:
    status = await job_status(ctx.redis, config.redis, job_id)
    if status is None:
        return problem(404, f"no such job (job records are kept {config.redis.job_ttl_s // 86400} days)")
    return JSONResponse(status, headers={"Cache-Control": "no-store"})
