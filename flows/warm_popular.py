"""Flow: warm a list of popular authors (scheduled weekly), and ad-hoc lists from the CLI.

The list comes from the ``names`` parameter, else the Prefect Variable ``bookwarm-popular-authors``
(a JSON list of names), else the 29 authors bookwarm ships with; a run without ``names`` adds the
``DEMAND_TOP`` authors readers missed most (bookwarm.cache.demand): the seed is kept by hand, the
rest is what readers ask for.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from prefect import flow
from prefect.runtime import flow_run
from prefect.variables import Variable

from bookwarm.parsing.names import parse_cell
from bookwarm.warming.context import WarmContext
from flows.flow_process import prepare_flow_process
from flows.job_run import flow_result, warm_new_job
from flows.params import Concurrency, NamedMaxDepth, PersonNames
from tasks.demand import top_demand
from tasks.settings import run_settings

VARIABLE = "bookwarm-popular-authors"
DEMAND_TOP = 50


def default_popular_authors() -> list[str]:
    text = resources.files("bookwarm.data").joinpath("popular_authors.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def popular_from_variable(value: object) -> list[str]:
    """The Variable holds a JSON list; the CLI may have stored it as a JSON string or a plain name."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = [value]
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return []


@flow(name="warm-popular-authors", log_prints=False)
async def warm_popular_authors(
    names: PersonNames | None = None,
    max_depth: NamedMaxDepth = 1,
    force: bool = False,
    concurrency: Concurrency = 32,
) -> Any:
    """A summary dict, or a Cancelled state holding it."""
    scheduled = not names
    if not names:
        names = popular_from_variable(await Variable.aget(VARIABLE)) or default_popular_authors()
    people = {p.key: {"name": p.name, "key": p.key} for n in names for p in parse_cell(n)}
    job_id = str(flow_run.id or "local")
    prepare_flow_process()
    settings = await run_settings()
    async with WarmContext(settings, with_providers=False) as ctx:
        if scheduled:
            for asked in await top_demand(ctx, DEMAND_TOP):
                people.setdefault(asked["key"], asked)
        authors = list(people.values())
        summary = await warm_new_job(
            ctx, job_id, "popular authors", authors, max_depth=max_depth, force=force, concurrency=concurrency
        )
    return flow_result(summary)
