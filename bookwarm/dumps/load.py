"""Write what the dumps say of a list of authors: the API path's own write, a chunk at a time.

Each chunk goes through ``prepare`` and ``commit`` (bookwarm.warming.author), the functions a warm's
batch writes with, so a dump-loaded author is cached exactly as a warmed one: both tiers, the ISBN
and works indexes, the review list for namesakes, and a processed marker. Its ``warmed_at`` and
its marker's ``last_warmed`` are the dump's newest ``last_modified``, not the load's time: the
entry is as old as the dump says, and refresh's change feed takes over from there.

A chunk skips the authors whose processed marker is as new as this dump (written by an earlier,
killed load, or warmed through the API since): a re-run writes only what is left.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bookwarm import clock
from bookwarm.errors import DumpError
from bookwarm.parsing.names import author_key, is_junk
from bookwarm.warming.author import Prepared, commit, prepare
from bookwarm.warming.context import WarmContext
from bookwarm.warming.shard import Fetched

CHUNK_AUTHORS = 1_000  # authors a written chunk (a Prefect task run): a few Redis pipelines of work


@dataclass
class ChunkResult:
    """A chunk's authors by status ("skipped": as new as this dump), or a whole load's."""

    counts: dict[str, int] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, why) an object write failed
    parts_done: int = 0  # a whole load's: partitions of the catalogue written

    def add(self, status: str, n: int = 1) -> None:
        self.counts[status] = self.counts.get(status, 0) + n

    def merge(self, other: ChunkResult) -> None:
        for status, n in other.counts.items():
            self.add(status, n)
        self.failed += other.failed

    @property
    def authors(self) -> int:
        return sum(self.counts.values()) + len(self.failed)


def wanted_authors(names: list[str]) -> list[dict[str, Any]]:
    """``{"name", "key"}`` for each distinct name (by key), blank lines and junk names dropped."""
    seen: dict[str, dict[str, Any]] = {}
    for raw in names:
        name = " ".join(raw.split())
        key = author_key(name) if name else ""
        if key and not is_junk(key) and key not in seen:
            seen[key] = {"name": name, "key": key}
    return list(seen.values())


def as_of(newest: str) -> str:
    """The dump's newest ``last_modified`` (UTC, no offset in the dump) as bookwarm's timestamps."""
    try:
        moment = datetime.fromisoformat(newest).replace(tzinfo=UTC)
    except ValueError:
        raise DumpError(f"the dump holds no readable last_modified ({newest!r})") from None
    return moment.isoformat(timespec="seconds")


def chunks(authors: list[dict[str, Any]], size: int = CHUNK_AUTHORS) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(authors), size):
        yield authors[start : start + size]


async def write_chunk(
    ctx: WarmContext,
    authors: list[dict[str, Any]],
    fetched: dict[str, Fetched],
    *,
    dump_as_of: str,
    job_id: str,
    force: bool = False,
) -> ChunkResult:
    result = ChunkResult()
    todo = authors if force else await _not_yet_written(ctx, authors, dump_as_of, result)
    prepared: list[Prepared] = []
    for author in todo:
        entry = prepare(author, 0, fetched.get(author["key"]) or Fetched())
        entry.data["warmed_at"] = dump_as_of
        entry.data["sources"]["openlibrary"]["dump"] = dump_as_of
        prepared.append(entry)
    if prepared:
        outcomes, failed = await commit(ctx, prepared, job_id, {})
        for outcome in outcomes:
            result.add(outcome.status)
        for entry, error in failed:
            result.failed.append((entry.author["name"], str(error)))
    return result


async def _not_yet_written(
    ctx: WarmContext, authors: list[dict[str, Any]], dump_as_of: str, result: ChunkResult
) -> list[dict[str, Any]]:
    markers = await ctx.hot.processed_many([a["key"] for a in authors])
    cutoff = clock.parse_iso(dump_as_of) or 0.0
    todo = []
    for author, record in zip(authors, markers, strict=True):
        written = clock.parse_iso(record.get("last_warmed")) if record else None
        if written is not None and written >= cutoff:
            result.add("skipped")
        else:
            todo.append(author)
    return todo
