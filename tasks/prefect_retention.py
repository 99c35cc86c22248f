"""Run the Prefect server's own clean-up now, and say how big its database is.

The server runs the same clean-up every hour (``db_vacuum``, configured by
``bookwarm.services.retention``); `bookwarm services clean` runs it at once, in a process with the
server's environment (``python -m tasks.prefect_retention``), and prints JSON: the database's size
before and after, in bytes (SQLite: the pages in use, as a deleted row's page is reused, not
returned to the file system; PostgreSQL: ``pg_database_size``), and how long the clean-up took.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import sqlalchemy as sa
from prefect.server.database import provide_database_interface
from prefect.server.services import db_vacuum
from prefect.settings import get_current_settings


async def database_bytes() -> int:
    """The data the server's database holds now."""
    db = provide_database_interface()
    async with db.session_context() as session:
        if session.bind is not None and session.bind.dialect.name == "sqlite":
            pages = (await session.execute(sa.text("PRAGMA page_count"))).scalar_one()
            free = (await session.execute(sa.text("PRAGMA freelist_count"))).scalar_one()
            size = (await session.execute(sa.text("PRAGMA page_size"))).scalar_one()
            return int((pages - free) * size)
        return int(
            (await session.execute(sa.text("SELECT pg_database_size(current_database())"))).scalar_one()
        )


async def clean_up_now() -> dict[str, Any]:
    """Prefect's own deletes, in its own batches: old runs (their task runs, states, logs and
    artifacts), old events, then what they left behind."""
    db = provide_database_interface()
    vacuum = get_current_settings().server.services.db_vacuum
    before = await database_bytes()
    started = time.perf_counter()
    if "flow_runs" in vacuum.enabled_vacuum_types:
        await db_vacuum.vacuum_old_flow_runs(db=db)
        await db_vacuum.vacuum_orphaned_logs(db=db)
        await db_vacuum.vacuum_orphaned_artifacts(db=db)
    if "events" in vacuum.enabled_vacuum_types:
        await db_vacuum.vacuum_events_with_retention_overrides(db=db)
        await db_vacuum.vacuum_old_events(db=db)
    took = time.perf_counter() - started
    return {
        "database_bytes_before": before,
        "database_bytes_after": await database_bytes(),
        "clean_up_s": round(took, 2),
        "run_retention_s": int(vacuum.retention_period.total_seconds()),
        "event_retention_s": int(get_current_settings().server.events.retention_period.total_seconds()),
        "batch_size": vacuum.batch_size,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(clean_up_now())))
