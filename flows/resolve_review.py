"""Flow: the operator's answer for an author under review, from the CLI or the UI.

``openlibrary_key`` pins the identity (stored in Redis, where every later run and worker reads it)
and warms the author by that key at once; ``not_an_author`` puts the name on the blocklist.

Only a name on the review list is resolved, under the display name the list holds: whoever reaches
the Prefect API cannot pin any name to any key (`bookwarm review resolve --force`, an operator's
explicit act, puts a name on the list first).
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from bookwarm.errors import InputError
from bookwarm.parsing.names import parse_cell
from bookwarm.warming.context import WarmContext
from flows.flow_process import prepare_flow_process
from flows.job_run import flow_result, warm_new_job
from flows.params import NamedMaxDepth, OpenLibraryAuthorKey, PersonName
from tasks.settings import run_settings


@flow(name="resolve-review", log_prints=False)
async def resolve_review(
    name: PersonName,
    openlibrary_key: OpenLibraryAuthorKey | None = None,
    not_an_author: bool = False,
    max_depth: NamedMaxDepth = 0,
) -> Any:
    """Exactly one of ``openlibrary_key`` (e.g. OL23919A) and ``not_an_author``."""
    if bool(openlibrary_key) == bool(not_an_author):
        raise InputError("give either an OpenLibrary author key (OL…A) or not-an-author, not both or neither")
    people = parse_cell(name)
    if len(people) != 1:
        raise InputError("give one author's name")
    person = people[0]
    prepare_flow_process()
    settings = await run_settings()
    async with WarmContext(settings, with_providers=False) as ctx:
        entry = await ctx.reviews.find(person.key)
        if entry is None:
            raise InputError(
                f"{person.key[:40]!r} is not on the review list (`bookwarm review` lists it; "
                "`bookwarm review resolve NAME --force` puts a name there first)"
            )
        display = str(entry["name"])  # as the library wrote it, checked by the parser then
        if not_an_author:
            await ctx.reviews.block(person.key)
            return {"name": display, "key": person.key, "resolution": "not an author (blocklist)"}
        assert openlibrary_key is not None
        await ctx.reviews.pin(person.key, openlibrary_key)
        job_id = str(flow_run.id or "local")
        author = {"name": display, "key": person.key, "openlibrary_key": openlibrary_key}
        summary = await warm_new_job(
            ctx, job_id, f"review of {display}", [author], max_depth=max_depth, force=True, concurrency=8
        )
    summary["resolution"] = f"pinned to {openlibrary_key}"
    return flow_result(summary)
