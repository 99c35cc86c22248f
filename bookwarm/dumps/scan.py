"""Find a list of authors' bibliographies in the dumps, in three streamed passes.

1. The authors dump: every author whose name (or an alternate name) holds every word of a wanted
   name, as OpenLibrary's ``author_name:`` search finds them, plus the author redirects. A polars
   filter on the folded JSON keeps the rows holding a wanted name's longest word; only those are
   parsed.
2. The works dump: the works naming one of those authors (or an author redirected to one), kept as
   the ``search.json`` docs the API path reads: key, title, author keys, first year, cover.
3. The authors dump again, for the names of the co-authors those works name (a work's doc lists
   every author's name, as ``search.json`` does).
4. The editions dump, when given: each kept work's ISBNs, languages, earliest publish year (as
   ``search.json``'s ``first_publish_year``) and a cover when the work has none. Editions of a merged
   work count for the work it was merged into.

What is kept is the wanted authors' works, never a whole file. The identity and the bibliography
are then chosen by the API path's own functions (``identity_from_books`` for an author with the
user's own ISBNs, ``choose_identity``, ``openlibrary_bibliography``), so a namesake goes to the
review list exactly as a warm sends it. One difference: the book that settles a namesake is looked
for among the works of the authors the name found (the API asks OpenLibrary for the ISBN itself).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from bookwarm.dumps import records
from bookwarm.dumps.files import DumpFiles
from bookwarm.dumps.rows import ReadCounts, read_chunks
from bookwarm.parsing.names import author_key
from bookwarm.providers.openlibrary import choose_identity
from bookwarm.providers.openlibrary_batch import (
    ISBNS_PER_AUTHOR,
    KeyWorks,
    Wanted,
    attributed,
    identity_from_books,
)
from bookwarm.warming.shard import Fetched

Progress = Callable[[str, ReadCounts], None]


@dataclass
class ScanCounts:
    """Rows skipped for a reason, by reason: shown in the summary, never fatal."""

    malformed_json: int = 0
    wrong_columns: int = 0
    works_without_authors: int = 0
    works_without_title: int = 0
    editions_without_work: int = 0
    redirects: int = 0
    deletes: int = 0
    newest: str = ""  # the newest last_modified of every file read: refresh takes over from there
    files: dict[str, dict[str, object]] = field(default_factory=dict)

    def read(self, label: str, counts: ReadCounts) -> None:
        self.files[label] = counts.to_dict()
        if counts.newest > self.newest:
            self.newest = counts.newest

    def other_rows(self, frame: pl.DataFrame, redirects: dict[str, str]) -> None:
        """Redirects (kept in ``redirects``, bare key -> bare key: authors and works alike, their
        keys never collide) and deletes: counted, never bibliographies."""
        self.deletes += frame.filter(pl.col("type") == "/type/delete").height
        moved = frame.filter(pl.col("type") == "/type/redirect")
        self.redirects += moved.height
        for key, text in moved.select("key", "json").iter_rows():
            record = records.parse(text)
            target = records.redirect_target(record) if record else None
            if target:
                redirects[key.rsplit("/", 1)[-1]] = target

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScanCounts:
        return cls(**{k: v for k, v in data.items() if k != "wrong_columns"})

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["wrong_columns"] = sum(int(f["skipped"]) for f in self.files.values())  # type: ignore[call-overload]
        return out


@dataclass
class _Wanted:
    name: str
    key: str
    words: frozenset[str]
    isbns: list[str]  # the user's own books (ISBN-13), as the API path asks for them


class AuthorScan:
    """What the dumps say of a list of authors (each a dict with ``name`` and ``key``)."""

    def __init__(
        self, files: DumpFiles, authors: list[dict[str, Any]], progress: Progress | None = None
    ) -> None:
        self.files = files
        self.progress = progress
        self.counts = ScanCounts()
        self.wanted = [
            _Wanted(
                a["name"],
                a["key"],
                _words(a["name"]),
                records.isbn13s(a.get("isbns") or [])[:ISBNS_PER_AUTHOR],
            )
            for a in authors
        ]
        self.candidates: dict[str, str] = {}  # OpenLibrary key -> name, for authors a wanted name may be
        self.matches: dict[str, list[str]] = defaultdict(list)  # wanted key -> candidate OL keys
        self.redirects: dict[str, str] = {}  # merged author or work OL key -> the one it now is
        self.works: dict[str, dict[str, Any]] = {}  # OL…W -> its search.json-shaped doc
        self.names: dict[str, str] = {}  # OL…A -> name, for every author the kept works name

    def run(self) -> dict[str, Fetched]:
        """Wanted key -> what OpenLibrary would have answered for it (identity and works)."""
        self._find_candidates()
        self._collect_works()
        self._name_coauthors()
        self._read_editions()
        return {w.key: self._fetched(w) for w in self.wanted}

    # pass 1 ---------------------------------------------------------------------------------

    def _find_candidates(self) -> None:
        by_word: dict[str, list[_Wanted]] = defaultdict(list)
        for wanted in self.wanted:
            if wanted.words:
                by_word[max(wanted.words, key=len)].append(wanted)
        patterns = sorted(by_word)
        for frame in self._frames("authors (names)", self.files.authors):
            self.counts.other_rows(frame, self.redirects)
            if not patterns:
                continue
            rows = frame.filter(
                (pl.col("type") == "/type/author")
                & pl.concat_str(
                    # decoded (a dump may escape non-ASCII as \uXXXX), accents and case folded
                    pl.col("json").str.json_path_match("$.name"),
                    pl.col("json").str.json_path_match("$.alternate_names"),
                    separator=" ",
                    ignore_nulls=True,
                )
                .str.normalize("NFKD")
                .str.replace_all(r"\p{M}+", "")
                .str.to_lowercase()
                .str.contains_any(patterns)
            )
            for key, text in rows.select("key", "json").iter_rows():
                record = records.parse(text)
                ol_key = records.author_key_of(key)
                name = records.text(record, "name") if record else None
                if record is None or ol_key is None or name is None:
                    self.counts.malformed_json += record is None
                    continue
                spellings = [name, *(a for a in record.get("alternate_names") or [] if isinstance(a, str))]
                word_sets = [_words(s) for s in spellings]
                seen: set[str] = set()
                for word in set().union(*word_sets):
                    for wanted in by_word.get(word, []):
                        if wanted.key not in seen and any(wanted.words <= words for words in word_sets):
                            seen.add(wanted.key)
                            self.matches[wanted.key].append(ol_key)
                            self.candidates[ol_key] = name
        if self.files.redirects is not None:
            for frame in self._frames("redirects", self.files.redirects):
                self.counts.other_rows(frame, self.redirects)

    # pass 2 ---------------------------------------------------------------------------------

    def _collect_works(self) -> None:
        wanted = set(self.candidates) | {
            s for s, t in self.redirects.items() if self._final(t) in self.candidates
        }
        if not wanted:
            return
        wanted_series = pl.Series(sorted(wanted)).implode()
        for frame in self._frames("works", self.files.works):
            self.counts.other_rows(
                frame, self.redirects
            )  # counted; work redirects wait for the editions (their works)
            works = frame.filter(pl.col("type") == "/type/work")
            named = works.get_column("json").str.contains(r"/authors/OL\d+A")
            self.counts.works_without_authors += int((~named).sum())
            rows = works.filter(
                named
                & pl.col("json")
                .str.extract_all(r"OL\d+A")
                .list.eval(pl.element().is_in(wanted_series))
                .list.any()
            )
            for key, text in rows.select("key", "json").iter_rows():
                record = records.parse(text)
                if record is None:
                    self.counts.malformed_json += 1
                    continue
                self._keep_work(key, record)

    def _keep_work(self, key: str, record: dict[str, Any]) -> None:
        work_key = key.removeprefix("/works/")
        authors = list(dict.fromkeys(self._final(k) for k in records.author_keys(record)))
        if not authors:
            self.counts.works_without_authors += 1
            return
        if not any(a in self.candidates for a in authors):
            return  # the prefilter's match was not in the authors list (a description, a link)
        title = records.text(record, "title")
        if title is None:
            self.counts.works_without_title += 1
            return
        doc: dict[str, Any] = {
            "key": f"/works/{work_key}",
            "title": title,
            "author_key": authors,
            "first_publish_year": records.year(record.get("first_publish_date")),
        }
        cover = records.cover(record)
        if cover is not None:
            doc["cover_i"] = cover
        self.works[work_key] = doc

    def _final(self, key: str) -> str:
        return records.final(key, self.redirects)

    # pass 4 ---------------------------------------------------------------------------------

    def _read_editions(self) -> None:
        if self.files.editions is None or not self.works:
            return
        wanted = set(self.works) | {s for s, t in self.redirects.items() if self._final(t) in self.works}
        wanted_series = pl.Series(sorted(wanted)).implode()
        years: dict[str, list[int]] = defaultdict(list)
        for frame in self._frames("editions", self.files.editions):
            editions = frame.filter(pl.col("type") == "/type/edition")
            linked = editions.get_column("json").str.contains(r"/works/OL\d+W")
            self.counts.editions_without_work += int((~linked).sum())
            rows = editions.filter(
                linked
                & pl.col("json")
                .str.extract_all(r"OL\d+W")
                .list.eval(pl.element().is_in(wanted_series))
                .list.any()
            )
            for text in rows.get_column("json"):
                record = records.parse(text)
                if record is None:
                    self.counts.malformed_json += 1
                    continue
                for work_key in records.work_keys(record):
                    doc = self.works.get(self._final(work_key))
                    if doc is not None:
                        _add_edition(doc, record, years)
        for work_key, found in years.items():
            doc = self.works[work_key]
            earliest = min(found)
            if doc["first_publish_year"] is None or earliest < doc["first_publish_year"]:
                doc["first_publish_year"] = earliest

    # pass 3 ---------------------------------------------------------------------------------

    def _name_coauthors(self) -> None:
        self.names = dict(self.candidates)
        unnamed = {k for doc in self.works.values() for k in doc["author_key"]} - set(self.names)
        if unnamed:
            keys = pl.Series([f"/authors/{k}" for k in sorted(unnamed)]).implode()
            for frame in self._frames("authors (co-authors)", self.files.authors):
                rows = frame.filter((pl.col("type") == "/type/author") & pl.col("key").is_in(keys))
                for key, text in rows.select("key", "json").iter_rows():
                    record = records.parse(text)
                    name = records.text(record, "name") if record else None
                    ol_key = records.author_key_of(key)
                    if name and ol_key:
                        self.names[ol_key] = name
        for doc in self.works.values():
            # As search.json: an author OpenLibrary has no record of is not named on the work.
            doc["author_key"] = [k for k in doc["author_key"] if k in self.names]
            doc["author_name"] = [self.names[k] for k in doc["author_key"]]

    # ----------------------------------------------------------------------------------------

    def _fetched(self, wanted: _Wanted) -> Fetched:
        candidates = set(self.matches.get(wanted.key, []))
        docs = [d for d in self.works.values() if candidates.intersection(d["author_key"])]
        identity = None
        if wanted.isbns:  # the person whose book the user owns, namesakes or not (as the API path)
            mine = set(wanted.isbns)
            owned = [d for d in docs if mine.intersection(d.get("isbn") or ())]
            identity = identity_from_books(Wanted(wanted.name, wanted.key, wanted.isbns), owned)
        if identity is None:
            identity = choose_identity(wanted.name, attributed(wanted.name, docs))
        if identity is None or identity.openlibrary_key is None:
            return Fetched(identity, KeyWorks())
        own = [d for d in docs if identity.openlibrary_key in d["author_key"]]
        return Fetched(identity, KeyWorks(sorted(own, key=lambda d: d["key"])))

    def _frames(self, label: str, path: Path) -> Iterator[pl.DataFrame]:
        return frames(label, path, self.counts, self.progress)


def frames(label: str, path: Path, counts: ScanCounts, progress: Progress | None) -> Iterator[pl.DataFrame]:
    """A dump file's chunks, its read counts kept in ``counts`` and shown to ``progress``."""

    def shown(read: ReadCounts) -> None:
        counts.read(label, read)
        if progress is not None:
            progress(label, read)

    for frame, _ in read_chunks(path, progress=shown):
        yield frame


def _add_edition(doc: dict[str, Any], record: dict[str, Any], years: dict[str, list[int]]) -> None:
    """One edition's ISBNs (as ISBN-13), language and year onto its work's doc."""
    isbns = doc.setdefault("isbn", [])
    isbns += [i for i in records.edition_isbns(record) if i not in isbns]
    languages = doc.setdefault("language", [])
    languages += [code for code in records.languages(record) if code not in languages]
    published = records.year(record.get("publish_date"))
    if published is not None:
        years[doc["key"].removeprefix("/works/")].append(published)
    if "cover_i" not in doc and (cover := records.cover(record)) is not None:
        doc["cover_i"] = cover


def _words(name: str) -> frozenset[str]:
    return frozenset(author_key(name).split("-")) - {""}
