"""Flow: the operator's answer for an author under review, from the CLI or the UI.

``openlibrary_key`` pins the identity (stored in Redis, where every later run and worker reads it)
and warms the author by that key at once; ``not_an_author`` puts the name on the blocklist.
"""

from __future__ import annotations

import re
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from bookwarm.errors import InputError
from bookwarm.parsing.names import parse_cell
from bookwarm.warming.context import WarmContext
from flows.job_run import flow_result, warm_new_job
from flows.params import NamedMaxDepth
from tasks.settings import run_settings

OPENLIBRARY_AUTHOR_KEY = re.compile(r"^OL[0-9]{1,12}A$")


@flow(name="resolve-review", log_prints=False)
async def resolve_review(
    name: str,
    openlibrary_key: str | None = None,
    not_an_author: bool = False,
    max_depth: NamedMaxDepth = 0,
) -> Any:
    """Exactly one of ``openlibrary_key`` (e.g. OL23919A) and ``not_an_author``."""
    if bool(openlibrary_key) == bool(not_an_author):
        raise InputError("give either an OpenLibrary author key (OL…A) or not-an-author, not both or neither")
    if openlibrary_key and not OPENLIBRARY_AUTHOR_KEY.match(openlibrary_key):
        raise InputError("an OpenLibrary author key looks like OL23919A")
    people = parse_cell(name)
    if len(people) != 1:
        raise InputError("give one author's name")
    person = people[0]
    settings = await run_settings()
    async with WarmContext(settings, with_providers=False) as ctx:
        if not_an_author:
            await ctx.reviews.block(person.key)
            return {"name": person.name, "key": person.key, "resolution": "not an author (blocklist)"}
        assert openlibrary_key is not None
        await ctx.reviews.pin(person.key, openlibrary_key)
        job_id = str(flow_run.id or "local")
        author = {"name": person.name, "key": person.key, "openlibrary_key": openlibrary_key}
        summary = await warm_new_job(
            ctx, job_id, f"review of {person.name}", [author], max_depth=max_depth, force=True, concurrency=8
        )
    summary["resolution"] = f"pinned to {openlibrary_key}"
    return flow_result(summary)
