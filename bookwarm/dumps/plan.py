"""What a dump load will write: the wanted authors, what the dumps say of each, and as of when."""

from __future__ import annotations

import hashlib
import json
import pickle
import time
from pathlib import Path
from typing import Any

from bookwarm.dumps.catalogue import CatalogueSpill
from bookwarm.dumps.files import KINDS, DumpFiles, find_files
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
    work_dir: Path | None = None,
) -> DumpPlan:
    """The wanted authors (names, a file of names, a parsed library's authors with their ISBNs) and
    what the dumps say of each. Every local path must be under the operator's source roots. With a
    ``work_dir``, what was read is kept there until ``drop_plan``: a re-run reads no dump again."""
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
    kept = plan_path(work_dir, files, authors) if work_dir else None
    if kept is not None and kept.is_file():
        try:
            plan = pickle.loads(kept.read_bytes())  # our own file, written below by this function
            if isinstance(plan, DumpPlan):
                return plan
        except Exception:  # a partial or older file: read the dumps again
            kept.unlink(missing_ok=True)
    started: dict[str, float] = {}

    def shown(stage: str, counts: ReadCounts) -> None:
        began = started.setdefault(stage, time.monotonic())
        notify(DumpProgress(stage, counts.bytes_read, counts.bytes_total, counts.rows, began))

    scan = AuthorScan(files, authors, progress=shown)
    fetched = scan.run()
    newest = scan.counts.newest or (f"{files.date}T00:00:00" if files.date else "")
    plan = DumpPlan(files, authors, fetched, scan.counts, as_of(newest))
    if kept is not None:
        kept.parent.mkdir(parents=True, exist_ok=True)
        partial = kept.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL))
        partial.replace(kept)  # whole or absent: a kill while writing leaves no half plan
    return plan


def plan_path(work_dir: Path, files: DumpFiles, authors: list[dict[str, Any]]) -> Path:
    """Where a list load keeps what it read, so a re-run after a kill reads no dump file again: named
    by the dump files (path, size, time: a newer dump in their place is read afresh) and the
    wanted authors."""
    stamps = {}
    for kind in KINDS:
        path = getattr(files, kind)
        stamps[kind] = [str(path), path.stat().st_size, path.stat().st_mtime_ns] if path else None
    wanted = [[a["key"], a.get("name"), sorted(a.get("isbns") or [])] for a in authors]
    signature = hashlib.sha256(json.dumps([stamps, wanted], sort_keys=True).encode()).hexdigest()[:24]
    return work_dir / f"plan-{signature}.pickle"


def drop_plan(plan: DumpPlan, work_dir: Path) -> None:
    """Every author of the plan is written: what was read is not needed any more."""
    plan_path(work_dir, plan.files, plan.authors).unlink(missing_ok=True)


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
