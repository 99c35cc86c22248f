"""`GET /v1/search?title=…[&author=…]`: what the title index holds for a title."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from bookwarm.api.dependencies import Config, Ctx, Reader, person
from bookwarm.api.responses import cached
from bookwarm.errors import InputError
from bookwarm.parsing.names import author_key
from bookwarm.parsing.titles import title_key

router = APIRouter(dependencies=[Reader], prefix="/v1/search", tags=["search"])


@router.get("", summary="Authors with a work of this title (the title index), optionally one author's")
async def search(
    request: Request,
    title: Annotated[str, Query(description="a title, as a reader types it")],
    ctx: Ctx,
    config: Config,
    author: Annotated[str | None, Query(description="only this author's works")] = None,
) -> Response:
    checked = person(title, "title")  # a title obeys the same rules as a name: one line, no formula
    key = title_key(checked)
    if not key:
        raise InputError("not a title: it needs letters or digits")
    found = await ctx.hot.titles(key)
    if author is not None:
        wanted = author_key(person(author))
        found = [entry for entry in found if entry.get("author_key") == wanted]
    found.sort(key=lambda e: (e.get("author") or "", e.get("title") or ""))
    raw = json.dumps(
        {"title": checked, "title_key": key, "results": found}, ensure_ascii=False, separators=(",", ":")
    ).encode()
    return cached(request, raw, config, tier="hot", bibliography=None, stale=False)
