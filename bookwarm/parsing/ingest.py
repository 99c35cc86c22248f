"""Parse a library export into records and unique, normalised authors.

Columns are processed with polars, and each *distinct* name is normalised once (a library repeats its
authors): by polars expressions for plain names, by ``parse_cell`` in Python for the rest. That keeps
a 100k-row file near a tenth of a second.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from bookwarm.errors import ConfigError, ParseError
from bookwarm.parsing import isbn as isbnlib
from bookwarm.parsing import isbn_exprs
from bookwarm.parsing.decode import decode, sniff_delimiter
from bookwarm.parsing.formats import COMMA, AuthorColumn, NameStyle, ResolvedFormat, detect
from bookwarm.parsing.name_exprs import is_junk_expr, is_plain_expr, plain_key_expr, plain_name_expr
from bookwarm.parsing.names import (
    AMPERSAND_STAND_IN,
    COMPANY_AMPERSAND,
    DEFAULT_WARM_ROLES,
    SUFFIX_AFTER_SEPARATOR,
    AuthorName,
    canonical_role,
    parse_cell,
)
from bookwarm.parsing.source import DEFAULT_MAX_BYTES, read_source
from bookwarm.parsing.table import InvalidUtf8, padded_quotes, read_table

if TYPE_CHECKING:
    from bookwarm.parsing.llm import LLMResult


_UTF8 = ("utf-8", "utf-8-sig")  # what polars reads as it is


@dataclass(frozen=True, slots=True)
class AuthorCount:
    name: str
    key: str
    books: int


@dataclass(frozen=True, slots=True)
class Rejection:
    row: int
    reason: str


@dataclass(frozen=True, slots=True)
class Record:
    row: int
    title: str | None
    authors: tuple[AuthorName, ...]
    isbn13: str | None
    isbn10: str | None


@dataclass(frozen=True)
class ParsedLibrary:
    """The parse result. ``authors`` are the ones to warm (roles in ``warm_roles``), most books first."""

    format: str
    encoding: str
    delimiter: str
    rows: int
    authors: list[AuthorCount]
    isbns: list[str]
    rejected: list[Rejection]
    books: pl.DataFrame  # row, title, isbn13, isbn10
    people: pl.DataFrame  # row, name, key, role (every person, every role)

    def author_isbns(
        self, warm_roles: frozenset[str] = DEFAULT_WARM_ROLES, per_author: int = 3
    ) -> dict[str, list[str]]:
        """A few ISBN-13s of each author's own books in this library (file order): the user owns
        these, so OpenLibrary's author of them is the person the user reads."""
        return self._per_author("isbn13", warm_roles, per_author)

    def author_titles(
        self, warm_roles: frozenset[str] = DEFAULT_WARM_ROLES, per_author: int = 3
    ) -> dict[str, list[str]]:
        """A few titles of each author's own books in this library (file order): what an operator
        recognises when asked which of two namesakes the user reads."""
        return self._per_author("title", warm_roles, per_author)

    def _per_author(self, column: str, warm_roles: frozenset[str], per_author: int) -> dict[str, list[str]]:
        """author key -> the first distinct values of a books ``column`` among the author's rows."""
        if self.books.is_empty() or self.people.is_empty():
            return {}
        joined = (
            self.people.filter(pl.col("role").is_in(list(warm_roles)))
            .join(self.books.select("row", column).drop_nulls(column), on="row")
            .sort("row")
            .group_by("key", maintain_order=True)
            .agg(pl.col(column).unique(maintain_order=True).head(per_author))
        )
        return dict(zip(joined["key"].to_list(), joined[column].to_list(), strict=True))

    def records(self) -> Iterator[Record]:
        """One Record per data row, in file order (built lazily: large files have many)."""
        by_row: dict[int, list[AuthorName]] = {}
        for row, name, key, role in self.people.iter_rows():
            by_row.setdefault(row, []).append(AuthorName(name, key, role))
        for row, title, isbn13, isbn10 in self.books.iter_rows():
            yield Record(row, title, tuple(by_row.get(row, ())), isbn13, isbn10)

    def to_summary(self) -> dict[str, Any]:
        """The ``bookwarm parse --json`` shape."""
        return {
            "format": self.format,
            "rows": self.rows,
            "authors": [{"name": a.name, "key": a.key, "books": a.books} for a in self.authors],
            "isbns": self.isbns,
            "rejected": [{"row": r.row, "reason": r.reason} for r in self.rejected],
        }


def parse_library(
    source: str | bytes | Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    warm_roles: frozenset[str] = DEFAULT_WARM_ROLES,
    fallback: Fallback | None = None,
    force_fallback: bool = False,
    label: str | None = None,
    max_authors: int | None = None,
) -> ParsedLibrary:
    """Parse a path, raw bytes or base64 text. Raises SourceError/ParseError with one-line messages.

    ``fallback`` (the Gemini parser) is used only when no rule understands the file, or when forced.
    It is a factory, so a missing API key is reported only for files that need it.

    ``max_authors`` bounds the distinct authors (to warm) a file may name: a library over it is
    refused in one line. Names are parsed in Python once per distinct cell, so a file of millions
    of distinct names would take minutes and gigabytes to refuse; it is refused first on its count
    of distinct author cells (polars, a second for millions), when that is over twice the bound, and
    then exactly, before the authors are listed.
    """
    data, read_label = read_source(source, max_bytes=max_bytes)
    label = label or read_label
    # UTF-8 files are classified on their first 64 KB (polars validates the rest as it reads);
    # anything else is decoded whole here.
    text, encoding = _decode(_head(data), label)
    if encoding not in _UTF8:
        text, encoding = _decode(data, label)
    if "\r" in text and "\n" not in text:
        # Classic Mac OS line endings (CR alone): polars and the csv module split lines on LF only.
        # A CR byte never occurs inside a multi-byte UTF-8 character, so the bytes convert as they are.
        text = text.replace("\r", "\n")
        data = data.replace(b"\r", b"\n") if encoding in _UTF8 else data
    try:
        delimiter = sniff_delimiter(text)
        headers = header_row(text, delimiter)
    except csv.Error as exc:
        problem = "a line break inside an unquoted cell" if "new-line" in str(exc) else str(exc)
        raise ParseError(f"{label}: not a readable CSV/TSV header ({problem})") from None
    fmt = None if force_fallback else detect(headers)
    if fmt is None:
        shown = _few_headers(headers)
        problem = f"{label}: no recognisable author column (headers: {shown})"
        if fallback is None:
            raise ParseError(problem)
        try:
            llm = fallback()
        except ConfigError as exc:
            raise ConfigError(f"{problem}; {exc}") from None
        text, encoding = _decode(data, label)
        return _parse_with_llm(text, encoding, llm, warm_roles)
    # Polars reads UTF-8 only: valid UTF-8 goes as it came (no decode/encode round trip), and only
    # the columns this format uses are materialised and trimmed.
    if encoding in _UTF8:
        try:
            frame = read_table(data.removeprefix(codecs.BOM_UTF8), delimiter, label, fmt.columns())
        except InvalidUtf8:  # broken bytes past the first 64 KB: decode leniently, as for the head
            text, encoding = _decode(data, label)
            frame = read_table(text.encode("utf-8"), delimiter, label, fmt.columns())
    else:
        frame = read_table(text.encode("utf-8"), delimiter, label, fmt.columns())
    rows = frame.height
    frame, formulas = _without_formulas(frame, [c.header for c in fmt.authors])
    if max_authors is not None:
        cells = _distinct_cells(frame, fmt.authors)
        _refuse_over(
            cells, max_authors * CELLS_PER_AUTHOR, max_authors, label, f"{cells:,} distinct author cells"
        )
    books = _books(frame, fmt)
    people = _people(frame, fmt.authors)
    if max_authors is not None:
        warmed = people.filter(pl.col("role").is_in(list(warm_roles)))
        authors = warmed["key_id"].n_unique()
        _refuse_over(authors, max_authors, max_authors, label, f"{authors:,} authors")
    return ParsedLibrary(
        format=fmt.name,
        encoding=encoding,
        delimiter=delimiter,
        rows=rows,
        authors=_count_authors(people, warm_roles),
        isbns=books["isbn13"].drop_nulls().unique(maintain_order=True).to_list(),
        rejected=sorted(_rejections(frame, books, people, fmt, warm_roles) + formulas, key=lambda r: r.row),
        books=books.drop("isbn_invalid"),
        people=people.drop("key_id"),
    )


# A distinct author cell names one author or more ("A & B"); more than this many cells per author
# allowed would need most of them to be the same people written differently.
CELLS_PER_AUTHOR = 2


def _distinct_cells(frame: pl.DataFrame, columns: tuple[AuthorColumn, ...]) -> int:
    cells = [frame.get_column(c.header).drop_nulls() for c in columns if c.header in frame.columns]
    return pl.concat(cells).n_unique() if cells else 0


def _refuse_over(found: int, limit: int, max_authors: int, label: str, counted: str) -> None:
    if found > limit:
        raise ParseError(
            f"{label}: more than {max_authors:,} distinct authors ({counted}), the most one job takes "
            f"(BOOKWARM_MAX_JOB_AUTHORS); split the file, or raise the limit where memory allows "
            f"(about 1.2 KB an author)"
        )


class _LLM(Protocol):
    def parse(self, lines: list[tuple[int, str]]) -> LLMResult: ...


Fallback = Callable[[], _LLM]


def _parse_with_llm(text: str, encoding: str, llm: _LLM, warm_roles: frozenset[str]) -> ParsedLibrary:
    """Rows are the file's non-blank lines, numbered by line; every line is accounted for."""
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    result = llm.parse(lines)
    rejected = dict(result.rejected)
    books: dict[str, list[object]] = {"row": [], "title": [], "isbn13": [], "isbn10": []}
    people: dict[str, list[object]] = {"row": [], "name": [], "key": [], "role": []}
    for row in result.rows:
        isbn13, isbn10 = isbnlib.normalise(row.isbn)
        if row.isbn.strip() and isbn13 is None:
            rejected[row.row] = f"invalid ISBN {row.isbn.strip()!r}"
        found = [p for cell in row.authors for p in parse_cell(cell, style="auto", separator=",")]
        seen: set[str] = set()
        for person in found:
            if person.key not in seen:
                seen.add(person.key)
                for k, v in (
                    ("row", row.row),
                    ("name", person.name),
                    ("key", person.key),
                    ("role", person.role),
                ):
                    people[k].append(v)
        if not found:
            rejected[row.row] = "no author after normalisation"
        for column, value in (("row", row.row), ("title", row.title), ("isbn13", isbn13), ("isbn10", isbn10)):
            books[column].append(value)
    people_frame = pl.DataFrame(
        people, schema={"row": pl.Int64, "name": pl.String, "key": pl.String, "role": pl.String}
    )
    books_frame = pl.DataFrame(
        books, schema={"row": pl.Int64, "title": pl.String, "isbn13": pl.String, "isbn10": pl.String}
    )
    return ParsedLibrary(
        format="llm",
        encoding=encoding,
        delimiter="",
        rows=len(lines),
        authors=_count_authors(people_frame, warm_roles),
        isbns=books_frame["isbn13"].drop_nulls().unique(maintain_order=True).to_list(),
        rejected=[Rejection(row, reason) for row, reason in sorted(rejected.items())],
        books=books_frame,
        people=people_frame,
    )


def _few_headers(headers: list[str], count: int = 5, width: int = 20) -> str:
    """Enough header names to fix a real export, and no more: the file's content is never echoed
    whole (errors reach logs, events and the Prefect database)."""
    shown = []
    for name in headers[:count]:
        clean = "".join(c if c.isprintable() else "?" for c in name)
        shown.append(repr(clean if len(clean) <= width else clean[: width - 1] + "…"))
    more = f", … {len(headers) - count} more" if len(headers) > count else ""
    return ", ".join(shown) + more


def _decode(data: bytes, label: str) -> tuple[str, str]:
    try:
        return decode(data)
    except ParseError as exc:
        raise ParseError(f"{label}: {exc}") from None


def _head(data: bytes, size: int = 65536) -> bytes:
    """The first ``size`` bytes, cut at a line end so no character is split."""
    if len(data) <= size:
        return data
    cut = data.rfind(b"\n", 0, size)
    return data[: cut + 1] if cut > 0 else data[:size]


def header_row(text: str, delimiter: str) -> list[str]:
    """The first record's cells, as csv reads them (a quoted header may hold the delimiter); in a
    padded file, a quote after the padding opens a quoted cell, as read_table reads the rest."""
    head = text[:65536]
    padded = padded_quotes(head.encode("utf-8", "replace"), delimiter)
    first = next(csv.reader(io.StringIO(head), delimiter=delimiter, skipinitialspace=padded), [])
    return [cell for cell in first]


def _books(frame: pl.DataFrame, fmt: ResolvedFormat) -> pl.DataFrame:
    """row, title, isbn13, isbn10, isbn_invalid: the first valid ISBN of each kind, columns in order.

    One pass over the ISBN columns side by side; the other form is derived only where a row lacks
    it (most exports carry both), and a row's first candidate is reported only when none is valid.
    """
    title = pl.col(fmt.title) if fmt.title else pl.lit(None, dtype=pl.String)
    if not fmt.isbns:
        return frame.select(
            "row",
            title.alias("title"),
            isbn13=pl.lit(None, dtype=pl.String),
            isbn10=pl.lit(None, dtype=pl.String),
            isbn_invalid=pl.lit(None, dtype=pl.String),
        )
    # Each ISBN column's cleaned value is materialised once: the checks below read it ~20 times.
    # Most exports only wrap ISBNs (`="…"`, `[…]`): stripping the edges is all the cleaning they need.
    names = [f"_isbn{i}" for i in range(len(fmt.isbns))]
    cleaned = frame.select(
        "row",
        title.alias("title"),
        *(pl.col(c).str.strip_chars(_EDGE_JUNK).alias(n) for c, n in zip(fmt.isbns, names, strict=True)),
    )
    columns: list[_IsbnColumn] = []
    for name in names:
        cleaned, column = _isbn_column(cleaned, name)
        columns.append(column)
    found = cleaned.select(  # eager: polars 2's default lazy engine, streaming, took twice as long here
        "row",
        "title",
        pl.coalesce([c.valid13 for c in columns]).alias("isbn13"),
        pl.coalesce([c.valid10 for c in columns]).alias("isbn10"),
        pl.coalesce([c.first for c in columns]).alias("first"),
    )
    has13, has10 = pl.col("isbn13").is_not_null(), pl.col("isbn10").is_not_null()
    one_form, none_valid = found.select(
        (has13 ^ has10).any().alias("one_form"),
        (~has13 & ~has10 & pl.col("first").is_not_null()).any().alias("none_valid"),
    ).row(0)
    if one_form:
        derived = found.filter(has13 ^ has10).select(
            "row",
            pl.coalesce("isbn13", isbn_exprs.to13_expr(pl.col("isbn10"))).alias("isbn13"),
            pl.coalesce("isbn10", isbn_exprs.to10_expr(pl.col("isbn13"))).alias("isbn10"),
        )
        found = found.update(derived, on="row")
    invalid = (  # already as ``isbn.clean`` shows it: every value that was not is cleaned above
        pl.when(~has13 & ~has10).then(pl.col("first")) if none_valid else pl.lit(None, dtype=pl.String)
    )
    return found.with_columns(invalid.alias("isbn_invalid")).drop("first")


CellConfig = tuple[NameStyle, str, str]  # style, separator, role: what decides how a cell reads

_EDGE_JUNK = "=\"'[] \t"
_NOT_CLEAN = r"[^0-9X]"  # a value with anything else needs cleaning (or is not an ISBN)


@dataclass(frozen=True)
class _IsbnColumn:
    """One ISBN column as three expressions: its first valid ISBN-13, first valid ISBN-10, first value."""

    valid13: pl.Expr
    valid10: pl.Expr
    first: pl.Expr


def _isbn_column(frame: pl.DataFrame, column: str) -> tuple[pl.DataFrame, _IsbnColumn]:
    """Clean an edge-stripped ISBN column like ``isbn.clean``, and the checks over it.

    Only the rows that still need it are cleaned (typed hyphens, a lower-case x: ~1% of a
    Goodreads export): cleaning the whole column cost more than every check after it.
    """
    values = frame.get_column(column)
    dirty = values.str.contains(_NOT_CLEAN).arg_true()
    if dirty.len() == 0:
        return frame, _scalar_isbns(frame, pl.col(column))
    raw = values.gather(dirty)
    if raw.str.contains(",", literal=True).any():  # lists, as LibraryThing's "[0201…, 978…]"
        found = _listed_isbns(frame.select("row", column), column)
        frame = frame.join(found, on="row", how="left", maintain_order="left")
        return frame, _IsbnColumn(*(pl.col(f"{column}{kind}") for kind in ("_13", "_10", "_first")))
    repaired = raw.to_frame().select(_clean_isbn(pl.col(column))).to_series()
    frame = frame.with_columns(values.clone().scatter(dirty, repaired))
    return frame, _scalar_isbns(frame, pl.col(column))


def _clean_isbn(value: pl.Expr) -> pl.Expr:
    """``isbn.clean``, and the ";" and "|" that exports put between or after ISBNs."""
    return isbn_exprs.clean_expr(value.str.replace_all("[;|]", ""))


def _listed_isbns(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """row, then the column's first valid ISBN-13, first valid ISBN-10 and first value, in list order.

    The lists are exploded and checked flat: polars cannot run the array checksum inside list.eval.
    """
    items = (
        frame.select("row", pl.col(column).str.split(","))
        .explode(column)
        .with_columns(_clean_isbn(pl.col(column)))
    )
    checks = _scalar_isbns(items, pl.col(column))
    return (
        items.select(
            "row",
            checks.valid13.alias(f"{column}_13"),
            checks.valid10.alias(f"{column}_10"),
            checks.first.alias(f"{column}_first"),
        )
        .group_by("row", maintain_order=True)
        .agg(pl.all().drop_nulls().first())
    )


def _scalar_isbns(frame: pl.DataFrame, value: pl.Expr) -> _IsbnColumn:
    """Most columns hold one length only (Goodreads' ISBN13 and ISBN): each check (shape and
    checksum, ~5 ms per 100k rows) runs only on a column that has values of its length."""
    lengths = set(frame.select(value.str.len_bytes().unique()).to_series().to_list())
    none = pl.lit(None, dtype=pl.String)
    return _IsbnColumn(
        pl.when(value.str.contains(isbnlib.ISBN13_RE) & isbn_exprs.valid13_expr(value)).then(value)
        if 13 in lengths
        else none,
        pl.when(value.str.contains(isbnlib.ISBN10_RE) & isbn_exprs.valid10_expr(value)).then(value)
        if 10 in lengths
        else none,
        pl.when(value.str.len_chars() > 0).then(value),
    )


def _people(frame: pl.DataFrame, columns: tuple[AuthorColumn, ...]) -> pl.DataFrame:
    """Long frame (row, name, key, role, key_id): each person once per row, in column then cell order.

    ``key_id`` numbers the keys, for grouping on integers; ``parse_library`` drops it.
    """
    if not columns:
        return pl.DataFrame(schema=_PEOPLE_SCHEMA)
    cells_per_column: list[tuple[pl.DataFrame, AuthorColumn]] = []
    for column in columns:
        roles = pl.col(column.roles_header) if column.roles_header else pl.lit(None, dtype=pl.String)
        cells = frame.select("row", pl.col(column.header).alias("cell"), roles.alias("roles")).filter(
            pl.col("cell").str.len_chars() > 0
        )
        if column.style == "first_last" and column.separator and not column.roles_header:
            # Split lists in polars and normalise each distinct *name* once: multi-author cells are
            # mostly unique per book, the names in them are not.
            cells = _split_cells(cells, column.separator)
            column = AuthorColumn(column.header, column.style, "", column.role)
        cells_per_column.append((cells, column))
    # Columns read alike (Goodreads' Author and, once split, Additional Authors) name mostly the
    # same people: their distinct cells are normalised together, once. Every person found is a
    # row of ``persons``; the rest of the work moves integers and gathers the strings at the end.
    parsed: dict[CellConfig, pl.DataFrame] = {}
    for config in dict.fromkeys(_parse_config(column) for _, column in cells_per_column):
        alike = [cells.select("cell", "roles") for cells, c in cells_per_column if _parse_config(c) == config]
        parsed[config] = _parse_distinct_cells(pl.concat(alike).unique(), AuthorColumn("", *config))
    persons = pl.concat(parsed.values()).with_row_index("person")
    key_ids = persons.select("key").unique().with_row_index("key_id")
    # Every person has a key, so this join keeps every row in place: "person" stays its position.
    persons = persons.join(key_ids, on="key", maintain_order="left")
    lookup: dict[CellConfig, pl.DataFrame] = {}  # each config's own rows of ``persons``
    start = 0
    for config, mapping in parsed.items():
        lookup[config] = persons.slice(start, mapping.height).select("cell", "roles", "person", "key_id")
        start += mapping.height
    links = pl.concat(
        cells.join(
            lookup[_parse_config(column)],
            on=["cell", "roles"],
            how="inner",
            nulls_equal=True,
            maintain_order="left_right",
        ).select("row", "person", "key_id")
        for cells, column in cells_per_column
    )
    # Links come column by column, each in row/piece/position order: a stable sort by row keeps that
    # order within a row, so the first (row, key) is the earliest column's entry. (row, key) is
    # packed into one integer: a third of the cost of comparing (row, key string) pairs.
    row_and_key = pl.col("row") * (1 << 32) + pl.col("key_id")
    kept = links.sort("row", maintain_order=True).filter(row_and_key.is_first_distinct())
    people = persons.select(pl.col("name", "key", "role", "key_id").gather(kept.get_column("person")))
    return people.insert_column(0, kept.get_column("row"))


_PEOPLE_SCHEMA = {
    "row": pl.Int64,
    "name": pl.String,
    "key": pl.String,
    "role": pl.String,
    "key_id": pl.UInt32,
}


def _parse_config(column: AuthorColumn) -> CellConfig:
    """What decides how a cell is read: two columns with the same config read a cell the same way."""
    return (column.style, column.separator, column.role)


def _split_cells(cells: pl.DataFrame, separator: str) -> pl.DataFrame:
    """One row per list item, in list order; suffixes such as 'Jr.' stay on their name."""
    unit = "\x1f"
    cell = pl.col("cell")
    if cells.select(cell.str.contains(SUFFIX_AFTER_SEPARATOR).any()).item():  # rare: skip the rewrite
        cell = cell.str.replace_all(SUFFIX_AFTER_SEPARATOR, " ${1}${2}")
    company = "&" in separator and cells.select(cell.str.contains(COMPANY_AMPERSAND).any()).item()
    if company:
        cell = cell.str.replace_all(COMPANY_AMPERSAND, f" {AMPERSAND_STAND_IN} ${{1}}${{2}}")
    # The common separator splits literally: the spaces it allows around the comma are stripped below.
    pieces = (
        cell.str.split(",") if separator == COMMA else cell.str.replace_all(separator, unit).str.split(unit)
    )
    split = cells.with_columns(pieces).explode("cell").with_columns(pl.col("cell").str.strip_chars())
    if company:
        split = split.with_columns(pl.col("cell").str.replace_all(AMPERSAND_STAND_IN, "&", literal=True))
    return split.filter(pl.col("cell").str.len_chars() > 0)


def _parse_distinct_cells(cells: pl.DataFrame, column: AuthorColumn) -> pl.DataFrame:
    """cell, roles, pos, name, key, role: every person named in each distinct cell, in cell order.

    Plain one-name cells (most of a library) are normalised by polars; ``parse_cell`` takes the rest.
    """
    schema = {
        "cell": pl.String,
        "roles": pl.String,
        "pos": pl.Int64,
        "name": pl.String,
        "key": pl.String,
        "role": pl.String,
    }
    plain = pl.Series("plain", [False] * cells.height, dtype=pl.Boolean)
    if column.style == "first_last" and not column.separator:
        plain = cells.select(pl.col("roles").is_null() & is_plain_expr(pl.col("cell"))).to_series()
    vectorised = (
        cells.filter(plain)
        .with_columns(pl.lit(0, dtype=pl.Int64).alias("pos"), plain_name_expr(pl.col("cell")).alias("name"))
        .with_columns(plain_key_expr(pl.col("name")).alias("key"))
        .filter(~is_junk_expr(pl.col("key")))
        .with_columns(pl.lit(canonical_role(column.role)).alias("role"))
    )
    out: dict[str, list[object]] = {k: [] for k in schema}
    cells_out, roles_out, pos_out = out["cell"], out["roles"], out["pos"]
    names_out, keys_out, role_out = out["name"], out["key"], out["role"]
    for cell, roles_cell in cells.filter(~plain).iter_rows():
        parsed = parse_cell(
            cell, style=column.style, separator=column.separator, role=column.role, roles_cell=roles_cell
        )
        for pos, person in enumerate(parsed):
            cells_out.append(cell)
            roles_out.append(roles_cell)
            pos_out.append(pos)
            names_out.append(person.name)
            keys_out.append(person.key)
            role_out.append(person.role)
    return pl.concat([vectorised.select(list(schema)), pl.DataFrame(out, schema=schema)])


def _count_authors(people: pl.DataFrame, warm_roles: frozenset[str]) -> list[AuthorCount]:
    if "key_id" not in people.columns:  # the Gemini fallback's people: few, keyed by string only
        people = people.with_columns(key_id=pl.col("key").rank("dense"))
    counted = (
        people.filter(pl.col("role").is_in(list(warm_roles)))
        .group_by("key_id")  # people holds each (row, key) once, so a group's length is its books
        .agg(pl.col("name").first(), pl.col("key").first(), pl.len().alias("books"))
        .sort("books", "key", descending=[True, False])
    )
    columns = (counted.get_column(c).to_list() for c in ("name", "key", "books"))
    return [AuthorCount(name, key, books) for name, key, books in zip(*columns, strict=True)]


# An author cell a spreadsheet would run: `=...`, or `+ - @` followed by a call, a pipe (DDE) or a
# sheet reference. Such rows are rejected, and their text is never repeated: not sent to providers,
# not written into job records or artifacts. (ISBN cells such as Goodreads' `="0441478123"` are
# data; an invalid one that reads as a formula is reported without its text.)
FORMULA = r"^(?:=|[+\-@].*[(|!])"


def _without_formulas(frame: pl.DataFrame, columns: list[str]) -> tuple[pl.DataFrame, list[Rejection]]:
    columns = [c for c in dict.fromkeys(columns) if c in frame.columns]
    if not columns or frame.height == 0:
        return frame, []
    is_formula = pl.any_horizontal(pl.col(c).str.contains(FORMULA).fill_null(False) for c in columns)
    rows = frame.filter(is_formula)["row"].to_list()
    if not rows:
        return frame, []
    reason = "a cell reads as a spreadsheet formula (not read)"
    return frame.filter(~is_formula), [Rejection(row, reason) for row in rows]


def _rejections(
    frame: pl.DataFrame,
    books: pl.DataFrame,
    people: pl.DataFrame,
    fmt: ResolvedFormat,
    warm_roles: frozenset[str],
) -> list[Rejection]:
    with_author = people.filter(pl.col("role").is_in(list(warm_roles)))["row"].unique()
    no_author = fmt.no_author_reason or "no author"
    reasons = (
        books.select(
            "row",
            pl.when(~pl.col("row").is_in(with_author.implode())).then(pl.lit(no_author)).alias("a"),
            pl.when(pl.col("isbn_invalid").is_not_null() & pl.col("isbn13").is_null())
            .then(
                pl.when(pl.col("isbn_invalid").str.contains(FORMULA))  # never echoed
                .then(pl.lit("invalid ISBN (a spreadsheet formula, not shown)"))
                .otherwise(pl.lit("invalid ISBN '") + pl.col("isbn_invalid") + pl.lit("'"))
            )
            .alias("b"),
        )
        .filter(pl.col("a").is_not_null() | pl.col("b").is_not_null())
        .select("row", pl.concat_str(["a", "b"], separator="; ", ignore_nulls=True).alias("reason"))
    )
    return [Rejection(row, reason) for row, reason in reasons.iter_rows()]
