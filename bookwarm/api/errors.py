"""One table from bookwarm's errors (and the framework's) to HTTP answers: one JSON line each,
``{"error": ..., "status": ...}``, never a traceback, and never the refused input itself (it may
be hostile: formula text, control characters, a path trick)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bookwarm.api.access import TooManyRequests, Unauthorized
from bookwarm.errors import CacheError, InputError, ServiceError

log = logging.getLogger("bookwarm.api")


def problem(status: int, error: str, headers: dict[str, str] | None = None, **more: object) -> JSONResponse:
    return JSONResponse({"error": error, "status": status, **more}, status_code=status, headers=headers)


async def _input(request: Request, exc: Exception) -> JSONResponse:
    return problem(400, str(exc))


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    fields = sorted({".".join(str(p) for p in e.get("loc", ())[1:]) for e in getattr(exc, "errors", list)()})
    return problem(422, f"invalid request: {', '.join(f for f in fields if f) or 'parameters'}")


async def _cache(request: Request, exc: Exception) -> JSONResponse:
    service = "redis" if "Redis" in str(exc) else "object store"
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return problem(503, f"{service} unavailable", {"Retry-After": "5"}, service=service)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    status = getattr(exc, "status_code", 500)
    detail = {404: "no such route", 405: "method not allowed"}.get(status, str(getattr(exc, "detail", "")))
    return problem(status, detail)


class HttpProblem(Exception):
    """A refusal with its own status (413 too large, 415 wrong content type), one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _problem(request: Request, exc: Exception) -> JSONResponse:
    return problem(getattr(exc, "status", 400), str(exc))


async def _service(request: Request, exc: Exception) -> JSONResponse:
    return problem(503, str(exc), {"Retry-After": "30"}, service="prefect")


async def _unauthorized(request: Request, exc: Exception) -> JSONResponse:
    return problem(401, str(exc), {"WWW-Authenticate": "Bearer"})


async def _too_many(request: Request, exc: Exception) -> JSONResponse:
    return problem(429, str(exc), {"Retry-After": str(getattr(exc, "retry_after_s", 1))})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem(500, "internal error (logged)")


HANDLERS = {
    HttpProblem: _problem,
    ServiceError: _service,
    Unauthorized: _unauthorized,
    TooManyRequests: _too_many,
    InputError: _input,
    RequestValidationError: _validation,
    CacheError: _cache,
    StarletteHTTPException: _http,
    Exception: _unexpected,
}


def install(app: FastAPI) -> None:
    for error, handler in HANDLERS.items():
        app.add_exception_handler(error, handler)
