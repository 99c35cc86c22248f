"""The fake catalog written as OpenLibrary's monthly dumps, in their real format.

The same catalog the fake OpenLibrary serves over ``search.json``, so a test (or `make bench-dump`)
can compare what a dump load writes with what a warm through the API writes. Each work names its
authors in one of the shapes real rows hold, in turn (../shared/notes/providers.md, "Data dumps");
each work has one edition (the fake's ``OL12M`` for ``OL12W``) with its ISBNs and language.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bookwarm.providers.fake.catalog import Catalog, CatalogWork
from bookwarm.providers.fake.server import edition_key

# Every shape real works give an author entry, used in turn.
AUTHOR_SHAPES = (
    lambda key: {"type": {"key": "/type/author_role"}, "author": {"key": f"/authors/{key}"}},
    lambda key: {"type": "/type/author_role", "author": {"key": f"/authors/{key}"}},
    lambda key: {"author": f"/authors/{key}"},
    lambda key: {"key": f"/authors/{key}"},
    lambda key: f"/authors/{key}",
)


def row(kind: str, key: str, modified: str, record: dict[str, Any], revision: int = 1) -> str:
    """One dump line: type, key, revision, last_modified, JSON (tab-separated)."""
    return "\t".join((f"/type/{kind}", key, str(revision), modified, json.dumps(record))) + "\n"


def write_dumps(
    catalog: Catalog, directory: Path, date: str = "2026-09-30", extra: dict[str, Iterable[str]] | None = None
) -> dict[str, Path]:
    """{kind: path} of the authors, works and editions dumps dated ``date``; ``extra`` appends
    lines of the test's own (awkward rows) to a kind's file."""
    directory.mkdir(parents=True, exist_ok=True)
    modified = f"{date}T12:00:00.000000"
    lines: dict[str, list[str]] = {"authors": [], "works": [], "editions": []}
    for author in catalog.authors.values():
        record: dict[str, Any] = {
            "key": f"/authors/{author.key}",
            "type": {"key": "/type/author"},
            "name": author.name,
            "last_modified": {"type": "/type/datetime", "value": modified},
        }
        if author.alternate_names:
            record["alternate_names"] = list(author.alternate_names)
        lines["authors"].append(row("author", record["key"], modified, record))
    for index, work in enumerate(catalog.works):
        lines["works"].append(row("work", f"/works/{work.key}", modified, _work(work, index)))
        edition = _edition(work)
        lines["editions"].append(row("edition", edition["key"], modified, edition))
    paths = {}
    for kind, body in lines.items():
        path = directory / f"ol_dump_{kind}_{date}.txt.gz"
        with gzip.open(path, "wt", encoding="utf-8") as out:
            out.writelines(body)
            out.writelines((extra or {}).get(kind, ()))
        paths[kind] = path
    return paths


def _work(work: CatalogWork, index: int) -> dict[str, Any]:
    record: dict[str, Any] = {
        "key": f"/works/{work.key}",
        "type": {"key": "/type/work"},
        "title": work.title,
        "authors": [AUTHOR_SHAPES[(index + n) % len(AUTHOR_SHAPES)](k) for n, k in enumerate(work.authors)],
    }
    if work.year:
        record["first_publish_date"] = str(work.year)
    if work.cover_id:
        record["covers"] = [-1, work.cover_id] if index % 2 else [work.cover_id]
    if work.description:
        record["description"] = {"type": "/type/text", "value": work.description}
    return record


def _edition(work: CatalogWork) -> dict[str, Any]:
    record: dict[str, Any] = {
        "key": f"/books/{edition_key(work)}",
        "type": {"key": "/type/edition"},
        "title": work.title,
        "works": [{"key": f"/works/{work.key}"}],
        "authors": [{"key": f"/authors/{k}"} for k in work.authors],
        "isbn_13": list(work.isbn),
        "languages": [{"key": f"/languages/{work.language}"}],
    }
    if work.year:
        record["publish_date"] = str(work.year)
    return record
