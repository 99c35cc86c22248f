"""What a dump load will write: the wanted authors, what the dumps say of each, and as of when."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from bookwarm.dumps.catalogue import CatalogueSpill
from bookwarm.dumps.files import DumpFiles, find_files
from bookwarm.dumps.load import as_of, wanted_authors
from bookwarm.dumps.progress import DumpProgress, notify
from bookwarm.dumps.rows import ReadCounts
from bookwarm.dumps.scan import AuthorScan, ScanCounts
from bookwarm.errors import InputError
from bookwarm.sources import SourcePolicy, check_local_path
from bookwarm.warming.shard import Fetched


class DumpPlan:
    """A plain class on purpose: Prefect walks dataclasses, dicts and lists passed to a task, and
    this one holds every wanted author's works (see ``KeyWorks``)."""

    __slots__ = ("as_of", "authors", "counts", "fetched", "files")

    def __init__(
        self,
        files: DumpFiles,
        authors: list[dict[str, Any]],
        fetched: dict[str, Fetched],
        counts: ScanCounts,
        as_of: str,
    ) -> None:
        self.files = files
        self.authors = authors
        self.fetched = fetched
        self.counts = counts
        self.as_of = as_of

    def summary(self) -> dict[str, Any]:
        return {"files": self.files.to_dict(), "as_of": self.as_of, "rows": self.counts.to_dict()}


DUMP_HINT = "list the dumps' directory in BOOKWARM_SOURCE_ROOTS on the machine that runs the load"


def plan_dump_load(
    paths: list[str],
    *,
    names: list[str] | None = None,
    authors_file: str | None = None,
    library_authors: list[dict[str, Any]] | None = None,
    max_authors: int,
    policy: SourcePolicy,
) -> DumpPlan:
    """The wanted authors (names, a file of names, a parsed library's authors with their ISBNs) and
    what the dumps say of each. Every local path must be under the operator's source roots."""
    files = find_files([check_local_path(p, policy, DUMP_HINT) for p in paths])
    listed = [
        *(names or []),
        *(read_names(check_local_path(authors_file, policy, DUMP_HINT)) if authors_file else []),
    ]
    authors = [*(library_authors or []), *wanted_authors(listed)]
    authors = list({a["key"]: a for a in reversed(authors)}.values())[::-1]  # a library's entry (ISBNs) wins
    if not authors:
        raise InputError(
            "no author to load: give names, --authors FILE (one name a line) or --library EXPORT"
        )
    if len(authors) > max_authors:
        raise InputError(f"{len(authors):,} authors is more than BOOKWARM_MAX_JOB_AUTHORS ({max_authors:,})")
    started: dict[str, float] = {}

    def shown(stage: str, counts: ReadCounts) -> None:
        began = started.setdefault(stage, time.monotonic())
        notify(DumpProgress(stage, counts.bytes_read, counts.bytes_total, counts.rows, began))

    scan = AuthorScan(files, authors, progress=shown)
    fetched = scan.run()
    newest = scan.counts.newest or (f"{files.date}T00:00:00" if files.date else "")
    return DumpPlan(files, authors, fetched, scan.counts, as_of(newest))


def plan_catalogue(paths: list[str], *, policy: SourcePolicy, work_dir: Path) -> CatalogueSpill:
    """Every author with a work: the catalogue spilled to ``work_dir`` (reused when a killed load
    left it there), ready to be read one partition at a time."""
    files = find_files([check_local_path(p, policy, DUMP_HINT) for p in paths])
    signature = hashlib.sha256(json.dumps(files.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
    started: dict[str, float] = {}

    def shown(stage: str, counts: ReadCounts) -> None:
        began = started.setdefault(stage, time.monotonic())
        notify(DumpProgress(stage, counts.bytes_read, counts.bytes_total, counts.rows, began))

    spill = CatalogueSpill(files, work_dir / signature, progress=shown)
    spill.build()
    return spill


def partition_plan(spill: CatalogueSpill, partition: int) -> DumpPlan:
    """One partition of a spilled catalogue, as a plan the writer takes."""
    authors: list[dict[str, Any]] = []
    fetched: dict[str, Fetched] = {}
    for author, found in spill.authors_of(partition):
        authors.append(author)
        fetched[author["key"]] = found
    newest = spill.counts.newest or (f"{spill.files.date}T00:00:00" if spill.files.date else "")
    return DumpPlan(spill.files, authors, fetched, spill.counts, as_of(newest))


def read_names(path: Path) -> list[str]:
    """One name a line; a directory or unreadable file is one clear error."""
    if not path.is_file():
        raise InputError(f"{path.name}: not a file (the authors file holds one name a line)")
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read authors file {path.name}: {exc.strerror or exc}") from None
    return text.splitlines()
