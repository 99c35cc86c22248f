"""The clock freshness is read by: when OpenLibrary's list was fetched, when an author was last
warmed, whether an entry is stale, which demand bucket, quota day and change-feed day it is.

``BOOKWARM_CLOCK_OFFSET_S`` moves it forward: `make bench-demand` simulates days with it, in one
process. Never set it in production. Job heartbeats, claims and TTLs keep the real clock.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime


def now() -> float:
    return time.time() + float(os.environ.get("BOOKWARM_CLOCK_OFFSET_S") or 0)


def iso_now() -> str:
    return datetime.fromtimestamp(now(), UTC).isoformat(timespec="seconds")


def parse_iso(stamp: str | None) -> float | None:
    """Epoch seconds of an ISO timestamp bookwarm wrote (``fetched_at``, ``last_warmed``), None when
    absent or unreadable."""
    try:
        return datetime.fromisoformat(stamp).timestamp() if stamp else None
    except ValueError:
        return None
