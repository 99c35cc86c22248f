"""What every route shares: the process's one WarmContext (Redis, both tiers, demand), its
settings, and the checks of what a request names (a person, an ISBN, a title).

The dependencies are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in a worker
thread, and four of them a request cost more CPU than the read itself (measured: docs/decisions.md)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Query, Request

from bookwarm.api.access import Access
from bookwarm.errors import InputError
from bookwarm.parsing import isbn as isbnlib
from bookwarm.parsing.names import author_key, tidy
from bookwarm.settings import Settings
from bookwarm.warming.context import WarmContext
from bookwarm.warming.live import LiveFetcher
from flows.params import MAX_NAME, NAME_PATTERN

_NAME = re.compile(NAME_PATTERN)
MAX_ISBN = 20  # 13 digits and a few hyphens or spaces
MAX_WAIT_S = 10.0  # the longest a reader may ask a miss to wait for OpenLibrary

Wait = Annotated[
    float | None,
    Query(
        ge=0,
        le=MAX_WAIT_S,
        description="seconds a miss may wait for OpenLibrary (default BOOKWARM_API_LIVE_WAIT_S)",
    ),
]


async def context(request: Request) -> WarmContext:
    ctx: WarmContext = request.app.state.ctx
    return ctx


async def settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


async def live(request: Request) -> LiveFetcher:
    fetcher: LiveFetcher = request.app.state.live
    return fetcher


async def read_access(request: Request) -> None:
    access: Access = request.app.state.access
    access.check(request, write=False)


async def write_access(request: Request) -> None:
    access: Access = request.app.state.access
    access.check(request, write=True)


Reader = Depends(read_access)
Writer = Depends(write_access)
Ctx = Annotated[WarmContext, Depends(context)]
Fetcher = Annotated[LiveFetcher, Depends(live)]
Config = Annotated[Settings, Depends(settings)]


def person(name: str, what: str = "name") -> str:
    """A name as the flows accept one, tidied; never quoted back (it may be hostile)."""
    if len(name) > MAX_NAME or not _NAME.match(name):
        raise InputError(f"not a {what}: one line, at most {MAX_NAME} characters, no formula or control text")
    tidied = tidy(name)
    if not author_key(tidied):
        raise InputError(f"not a {what}: it needs letters or digits")
    return tidied


def isbn13(raw: str) -> str:
    """An ISBN-10 or -13 (hyphens and spaces allowed) as its ISBN-13, or InputError."""
    if len(raw) > MAX_ISBN:
        raise InputError("not an ISBN: too long")
    value, _ = isbnlib.normalise(raw.replace("-", "").replace(" ", ""))
    if value is None:
        raise InputError("not an ISBN: 10 or 13 digits with a valid checksum")
    return value
