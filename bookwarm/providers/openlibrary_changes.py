"""OpenLibrary's RecentChanges feed, read one UTC day at a time, to the end.

Its traps (../shared/notes/providers.md, "Freshness"): changesets come newest first; a page may be
short before the end (new-account changesets are dropped after the limit is applied), so only an
empty page ends a window; ``offset`` is clamped to 10,000, so one window holds at most 11,000
changesets: past that the day is read again kind by kind, and what even that cannot reach is
reported, never silently skipped; changes arriving while we page shift offsets, so changesets are
kept by ``id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bookwarm.providers.http import CallStats, ProviderHttp

PAGE = 1000  # OpenLibrary's largest
MAX_OFFSET = 10_000
# The kinds a day is narrowed to when it holds more than one window can reach. Kinds are open-ended;
# these are the ones that touch works, editions and authors.
KINDS = (
    "add-book",
    "edit-book",
    "update",
    "merge-authors",
    "merge-works",
    "add-cover",
    "revert",
    "undo",
    "bulk_update",
)


@dataclass
class DayOfChanges:
    day: date
    changesets: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> changeset
    truncated: list[str] = field(default_factory=list)  # windows that held more than a read can reach

    @property
    def newest_id(self) -> int:
        return max(self.changesets, default=0)


class ChangeFeed:
    def __init__(self, http: ProviderHttp) -> None:
        self.http = http

    async def day(self, day: date, stats: CallStats, *, after_id: int = 0) -> DayOfChanges:
        """Every changeset of ``day`` newer than ``after_id``. Raises the provider's error when a
        page fails: the caller must not take the day as read."""
        found = DayOfChanges(day)
        if not await self._window(found, day, None, stats, after_id):
            for kind in KINDS:
                if not await self._window(found, day, kind, stats, after_id):
                    found.truncated.append(kind)
        return found

    async def _window(
        self, found: DayOfChanges, day: date, kind: str | None, stats: CallStats, after_id: int
    ) -> bool:
        """Pages one window into ``found``; False when it holds more than offsets can reach."""
        path = f"/recentchanges/{day:%Y/%m/%d}" + (f"/{kind}" if kind else "") + ".json"
        offset = 0
        while True:
            page = await self.http.get_json(
                path, {"limit": PAGE, "offset": offset}, author=f"changes {day}", stats=stats
            )
            if not page:
                return True
            for changeset in page:
                number = int(changeset.get("id") or 0)
                if number <= after_id:
                    return True  # newest first: the rest were acted on by an earlier run
                found.changesets.setdefault(number, changeset)
            offset += PAGE
            if offset > MAX_OFFSET:
                return False


def touched(changeset: dict[str, Any]) -> tuple[set[str], set[str], set[str]]:
    """(author keys, work keys, edition keys) a changeset touches, OL…A / OL…W / OL…M."""
    authors: set[str] = set()
    works: set[str] = set()
    editions: set[str] = set()
    for change in changeset.get("changes") or []:
        key = str(change.get("key") or "")
        if key.startswith("/authors/"):
            authors.add(key.removeprefix("/authors/"))
        elif key.startswith("/works/"):
            works.add(key.removeprefix("/works/"))
        elif key.startswith("/books/"):
            editions.add(key.removeprefix("/books/"))
    return authors, works, editions


def merge_of(changeset: dict[str, Any]) -> tuple[str, list[str]] | None:
    """(master, duplicates) of a merge-authors changeset, as OL…A keys."""
    if changeset.get("kind") != "merge-authors":
        return None
    data = changeset.get("data") or {}
    master = str(data.get("master") or "").removeprefix("/authors/")
    duplicates = [str(d).removeprefix("/authors/") for d in data.get("duplicates") or []]
    return (master, duplicates) if master and duplicates else None
