"""Every author of the dumps with at least one work (``--all``), in memory bounded by one partition.

A list of authors keeps their works in memory (``scan``); the whole catalogue (40 million works)
cannot. So its works are spilled to Parquet files on disk, partitioned twice:

1. The authors file: every author's name and bookwarm key (``author_key``: the cache's key, so two
   OpenLibrary authors of one normalised name, namesakes, are one partition's one group, and
   ``choose_identity`` decides between them as a name search would). Held in memory as one polars
   frame (about 40 bytes an author), with the author redirects.
2. The works file: each work's fields (``records``), spilled by work key into W partitions (one
   per 100,000 works, estimated from the file's first chunk: what a join holds, as polars frames).
3. The editions file: each edition's ISBNs, languages, year and cover, spilled by work key too.
4. Per work partition: editions joined to their works, each work's author keys named, then each
   (author, work) pair spilled by the author's bookwarm key into A partitions (one per 50,000
   pairs, counted in stage 2: what a partition's plan holds, as Python objects, ~1 KB a pair).

Then ``authors_of(p)`` reads one author partition and gives each bookwarm key's identity and
works: what the flow writes, a chunk at a time. Every stage ends with a marker file: a re-run of a
killed load reuses what is on disk and reads no dump file again.
"""

from __future__ import annotations

import itertools
import json
import operator
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from bookwarm.dumps import records
from bookwarm.dumps.files import DumpFiles
from bookwarm.dumps.rows import ReadCounts, estimate_rows
from bookwarm.dumps.scan import ScanCounts, frames
from bookwarm.parsing.names import author_key, is_junk
from bookwarm.providers.openlibrary import choose_identity
from bookwarm.providers.openlibrary_batch import KeyWorks
from bookwarm.warming.shard import Fetched

Progress = Callable[[str, ReadCounts], None]
FLUSH_ROWS = 50_000  # rows buffered per spill before a Parquet file is written
WORKS_PER_PARTITION = 100_000  # works a work partition is sized for (with their editions: ~150 MB joined)
PAIRS_PER_PARTITION = 50_000  # (author, work) pairs an author partition is sized for
SEED = 20_260_930
_WORK_SCHEMA = {
    "work": pl.String,
    "title": pl.String,
    "year": pl.Int32,
    "cover": pl.Int64,
    "authors": pl.List(pl.String),
}
_EDITION_SCHEMA = {
    "work": pl.String,
    "isbns": pl.List(pl.String),
    "languages": pl.List(pl.String),
    "year": pl.Int32,
    "cover": pl.Int64,
}


class CatalogueSpill:
    """The spilled catalogue under ``directory``; ``build()`` makes (or reuses) it."""

    def __init__(self, files: DumpFiles, directory: Path, progress: Progress | None = None) -> None:
        self.files = files
        self.directory = directory
        self.progress = progress
        self.counts = ScanCounts()
        self.work_partitions = 1  # known once the works file is sized (``build``)
        self.partitions = 1  # author partitions: known once the works are counted (stage 2)

    # the whole build, stage by stage -------------------------------------------------------

    def build(self) -> None:
        stamps = {str(p): [p.stat().st_size, p.stat().st_mtime_ns] for p in self._paths()}  # another download
        identity = {"files": stamps, "polars": pl.__version__}
        meta = self.directory / "meta.json"
        if not meta.exists() or json.loads(meta.read_text()).get("identity") != identity:
            shutil.rmtree(self.directory, ignore_errors=True)  # another dump: start again
            self.directory.mkdir(parents=True)
            parts = max(1, -(-estimate_rows(self.files.works) // WORKS_PER_PARTITION))
            meta.write_text(json.dumps({"identity": identity, "work_partitions": parts}))
        self.work_partitions = int(json.loads(meta.read_text())["work_partitions"])
        previous = None
        for stage, run in (
            ("authors", self._read_authors),
            ("works", self._read_works),
            ("editions", self._read_editions),
            ("joined", self._join),
        ):
            done = self.directory / f"{stage}.done"
            if not done.exists():
                if previous is not None:  # what the stages before counted (maybe in a killed run)
                    self.counts = ScanCounts.from_dict(json.loads(previous.read_text()))
                run()
                done.write_text(json.dumps(self.counts.to_dict()))
            previous = done
            if stage == "works":
                self.partitions = int((self.directory / "author_partitions").read_text())
        assert previous is not None
        self.counts = ScanCounts.from_dict(json.loads(previous.read_text()))

    # 1. names ------------------------------------------------------------------------------

    def _read_authors(self) -> None:
        frames = []
        redirects: dict[str, str] = {}
        for frame in self._frames("authors", self.files.authors):
            self.counts.other_rows(frame, redirects)
            authors = frame.filter(pl.col("type") == "/type/author").select(
                pl.col("key").str.strip_prefix("/authors/").alias("ol"),
                pl.col("json").str.json_path_match("$.name").str.strip_chars().alias("name"),
            )
            unreadable = authors.get_column("name").is_null() | (authors.get_column("name") == "")
            self.counts.malformed_json += int(unreadable.sum())
            authors = authors.filter(~unreadable)
            keys = [author_key(n) for n in authors.get_column("name")]
            frames.append(
                authors.with_columns(pl.Series("bw", keys, dtype=pl.String)).filter(pl.col("bw") != "")
            )
        names = (
            pl.concat(frames)
            if frames
            else pl.DataFrame(schema={"ol": pl.String, "name": pl.String, "bw": pl.String})
        )
        names.write_parquet(self.directory / "names.parquet")
        if self.files.redirects is not None:
            for frame in self._frames("redirects", self.files.redirects):
                self.counts.other_rows(frame, redirects)
        self._save_redirects(redirects)

    # 2. and 3. works and editions, spilled by work key --------------------------------------

    def _read_works(self) -> None:
        redirects = self._redirects()
        pairs = 0
        with _Spill(self.directory / "works", self.work_partitions, _WORK_SCHEMA, "work") as spill:
            for frame in self._frames("works", self.files.works):
                self.counts.other_rows(frame, redirects)  # the works' own: editions follow them
                for key, text in (
                    frame.filter(pl.col("type") == "/type/work").select("key", "json").iter_rows()
                ):
                    record = records.parse(text)
                    if record is None:
                        self.counts.malformed_json += 1
                        continue
                    authors = list(
                        dict.fromkeys(records.final(k, redirects) for k in records.author_keys(record))
                    )
                    title = records.text(record, "title")
                    if not authors:
                        self.counts.works_without_authors += 1
                    elif title is None:
                        self.counts.works_without_title += 1
                    else:
                        year = records.year(record.get("first_publish_date"))
                        spill.add((key.removeprefix("/works/"), title, year, records.cover(record), authors))
                        pairs += len(authors)
        self._save_redirects(redirects)
        (self.directory / "author_partitions").write_text(str(max(1, -(-pairs // PAIRS_PER_PARTITION))))

    def _read_editions(self) -> None:
        moves = self._work_moves()  # an edition of a merged work counts for the work it now is
        with _Spill(self.directory / "editions", self.work_partitions, _EDITION_SCHEMA, "work") as spill:
            if self.files.editions is None:
                return
            for frame in self._frames("editions", self.files.editions):
                self.counts.other_rows(frame, {})
                for text in frame.filter(pl.col("type") == "/type/edition").get_column("json"):
                    record = records.parse(text)
                    if record is None:
                        self.counts.malformed_json += 1
                        continue
                    works = records.work_keys(record)
                    if not works:
                        self.counts.editions_without_work += 1
                        continue
                    isbns, languages = records.edition_isbns(record), records.languages(record)
                    year = records.year(record.get("publish_date"))
                    for work in dict.fromkeys(moves.get(w, w) for w in works):
                        spill.add((work, isbns, languages, year, records.cover(record)))

    # 4. works with their editions and named authors, spilled by author ------------------------

    def _join(self) -> None:
        names = pl.read_parquet(self.directory / "names.parquet")
        with _Spill(self.directory / "authors", self.partitions, None, "bw") as spill:
            for q in range(self.work_partitions):
                works = _read_part(self.directory / "works", q, _WORK_SCHEMA)
                editions = _read_part(self.directory / "editions", q, _EDITION_SCHEMA)
                by_work = editions.group_by("work").agg(
                    pl.col("isbns").explode().drop_nulls().unique(maintain_order=True).alias("isbns"),
                    pl.col("languages").explode().drop_nulls().unique(maintain_order=True).alias("languages"),
                    pl.col("year").min().alias("edition_year"),
                    pl.col("cover").drop_nulls().first().alias("edition_cover"),
                )
                joined = works.join(by_work, on="work", how="left", coalesce=True).with_columns(
                    pl.min_horizontal("year", "edition_year").alias("year"),
                    pl.coalesce("cover", "edition_cover").alias("cover"),
                )
                named = (
                    joined.select("work", "authors")
                    .explode("authors")
                    .join(
                        names.select(pl.col("ol").alias("authors"), "name"),
                        on="authors",
                        how="inner",
                        maintain_order="left",
                    )
                    .group_by("work", maintain_order=True)
                    .agg(pl.col("authors").alias("author_key"), pl.col("name").alias("author_name"))
                )
                docs = joined.drop("authors", "edition_year", "edition_cover").join(
                    named, on="work", how="inner"
                )
                pairs = (
                    docs.with_columns(pl.col("author_key").alias("owner"))
                    .explode("owner")
                    .join(
                        names.select(pl.col("ol").alias("owner"), pl.col("name").alias("owner_name"), "bw"),
                        on="owner",
                        how="inner",
                    )
                )
                spill.add_frame(pairs)

    # one partition's authors ------------------------------------------------------------------

    def authors_of(self, partition: int) -> Iterator[tuple[dict[str, Any], Fetched]]:
        """(author, what the dump says of it) for each bookwarm key of one author partition. One
        sorted pass over its rows (a polars frame per key cost 0.6 ms an author)."""
        pairs = _read_part(self.directory / "authors", partition, None)
        if pairs.is_empty():
            return
        columns = (
            "bw",
            "owner_name",
            "work",
            "title",
            "author_key",
            "author_name",
            "year",
            "isbns",
            "languages",
            "cover",
        )
        rows = pairs.sort("bw", "work").select(columns).iter_rows()
        for bw, group in itertools.groupby(rows, key=operator.itemgetter(0)):
            if is_junk(bw):
                continue
            docs: list[dict[str, Any]] = []
            name = None
            last_work = None
            for _, owner_name, work, title, keys, names, year, isbns, languages, cover in group:
                name = name or owner_name
                if work == last_work:  # a work of two namesakes: one doc
                    continue
                last_work = work
                doc = {
                    "key": f"/works/{work}",
                    "title": title,
                    "author_key": keys,
                    "author_name": names,
                    "first_publish_year": year,
                    "isbn": isbns or [],
                    "language": languages or [],
                }
                if cover is not None:
                    doc["cover_i"] = cover
                docs.append(doc)
            identity = choose_identity(name or bw, docs)
            if identity is None or identity.openlibrary_key is None:
                continue
            own = [d for d in docs if identity.openlibrary_key in d["author_key"]]
            yield {"name": name, "key": bw}, Fetched(identity, KeyWorks(own))

    # ------------------------------------------------------------------------------------------

    def _paths(self) -> list[Path]:
        return [
            p for p in (self.files.authors, self.files.works, self.files.editions, self.files.redirects) if p
        ]

    def _redirects(self) -> dict[str, str]:
        moves: dict[str, str] = json.loads((self.directory / "redirects.json").read_text())
        return moves

    def _save_redirects(self, redirects: dict[str, str]) -> None:
        (self.directory / "redirects.json").write_text(json.dumps(redirects))

    def _work_moves(self) -> dict[str, str]:
        """Merged work -> the work it now is (editions of a merged work count for that one)."""
        moves = self._redirects()
        return {k: records.final(v, moves) for k, v in moves.items() if k.endswith("W")}

    def _frames(self, label: str, path: Path) -> Iterator[pl.DataFrame]:
        return frames(label, path, self.counts, self.progress)


class _Spill:
    """Rows buffered and written as Parquet files, one directory per partition of ``by``."""

    def __init__(self, root: Path, partitions: int, schema: dict[str, Any] | None, by: str) -> None:
        self.root = root
        self.partitions = partitions
        self.schema = schema
        self.by = by
        self.rows: list[tuple[Any, ...]] = []
        self.files = 0
        for p in range(partitions):
            (root / str(p)).mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> _Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.flush()

    def add(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)
        if len(self.rows) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            assert self.schema is not None
            self.add_frame(pl.DataFrame(self.rows, schema=self.schema, orient="row"))
            self.rows = []

    def add_frame(self, frame: pl.DataFrame) -> None:
        if frame.is_empty():
            return
        parts = frame.with_columns((pl.col(self.by).hash(seed=SEED) % self.partitions).alias("_p"))
        for (p,), part in parts.partition_by("_p", as_dict=True).items():
            part.drop("_p").write_parquet(self.root / str(p) / f"{self.files:06d}.parquet")
        self.files += 1


def _read_part(root: Path, partition: int, schema: dict[str, Any] | None) -> pl.DataFrame:
    files = sorted((root / str(partition)).glob("*.parquet"))
    if not files:
        return pl.DataFrame(schema=schema or {"bw": pl.String})
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed")
