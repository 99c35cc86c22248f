"""Read an export's table: polars first, Python's csv module for the files polars rejects.

Polars reads the files apps write. Hand-edited files sometimes hold a quote inside an unquoted cell
(`Jo"`), which polars refuses ("CSV malformed") but spreadsheets and the csv module read as a
character of the cell. Those files are read by the csv module instead: slower (about 1.5 s per 100k
rows), but only for them; so are files whose cells are padded before an opening quote, which
polars splits. A quote opened and never closed is an error either way, reported with the line it
starts on.
"""

from __future__ import annotations

import csv
import io
import re

import polars as pl

from bookwarm.errors import ParseError

FIRST_DATA_ROW = 2  # rows are numbered as a spreadsheet shows them: the header is row 1


class InvalidUtf8(ParseError):
    """The bytes are not valid UTF-8 past the part the encoding was decided on."""


def read_table(data: bytes, delimiter: str, label: str, columns: list[str]) -> pl.DataFrame:
    """The ``columns`` of UTF-8 ``data``, trimmed, numbered by ``row``, without blank lines."""
    try:
        if padded_quotes(data, delimiter):
            # `Jack London      , "London, Jack"      ,`: polars reads the quote as text and splits
            # the cell; spreadsheets open a quoted cell after the padding, as the csv module does.
            frame = _read_with_csv_module(data, delimiter, label, columns, skip_padding=True)
            return _tidy(frame, label)
        frame = pl.read_csv(
            io.BytesIO(data),
            separator=delimiter,
            infer_schema=False,
            truncate_ragged_lines=True,
            quote_char='"',
            raise_if_empty=True,
            columns=columns or None,
        )
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, pl.exceptions.ColumnNotFoundError) as exc:
        if "utf-8" in str(exc).lower() or "utf8" in str(exc).lower():
            raise InvalidUtf8(f"{label}: invalid UTF-8") from None
        if not isinstance(exc, pl.exceptions.ComputeError):
            raise ParseError(f"{label}: not a readable CSV/TSV file ({str(exc).splitlines()[0]})") from None
        frame = _read_with_csv_module(data, delimiter, label, columns)
    return _tidy(frame, label)


def padded_quotes(data: bytes, delimiter: str) -> bool:
    """A file re-saved with every cell padded (its header too), where a quote opens a cell after the
    padding. Both are asked: a quoted title holding `, "` must not send a normal export to the
    slower reader."""
    sep = re.escape(delimiter.encode())
    header = data.split(b"\n", 1)[0]
    if re.search(rb"[ \t]" + sep + rb"|" + sep + rb"[ \t]", header) is None:
        return False
    return re.search(rb"(?:^|" + sep + rb"|\n)[ \t]+\"(?!\")", data) is not None


def _tidy(frame: pl.DataFrame, label: str) -> pl.DataFrame:
    # Trimmed, numbered as a spreadsheet shows rows, and without blank lines (they are not books).
    frame = (
        frame.select(pl.all().str.strip_chars())
        .with_row_index("row", offset=FIRST_DATA_ROW)
        .with_columns(pl.col("row").cast(pl.Int64))
        .filter(pl.any_horizontal(pl.exclude("row").str.len_chars() > 0))
    )
    if frame.height == 0:
        raise ParseError(f"{label}: the file has a header row but no books")
    return frame


def _read_with_csv_module(
    data: bytes, delimiter: str, label: str, columns: list[str], *, skip_padding: bool = False
) -> pl.DataFrame:
    """The frame polars would have read: one row per record (blank lines too), empty cells null,
    cells past the header dropped, missing ones null."""
    text = data.decode("utf-8")
    try:
        records = _records(text, delimiter, label, strict=True, skip_padding=skip_padding)
    except _CsvProblem as problem:
        if problem.unclosed_quote:
            raise
        # Quotes in odd places (`"Jo" Walton`, padding after a closing quote): read as spreadsheets
        # do, keeping the characters.
        records = _records(text, delimiter, label, strict=False, skip_padding=skip_padding)
    header, records = (records[0], records[1:]) if records else ([], [])
    # The first of a repeated name; matched without padding, named as the file spells them.
    position = {name.strip(): i for i, name in reversed(list(enumerate(header)))}
    wanted = columns or list(position)
    missing = [name for name in wanted if name.strip() not in position]
    if missing:
        raise ParseError(f"{label}: not a readable CSV/TSV file (no column {missing[0].strip()[:20]!r})")
    return pl.DataFrame(
        {name: [_cell(record, position[name.strip()]) for record in records] for name in wanted},
        schema=dict.fromkeys(wanted, pl.String),
    )


class _CsvProblem(ParseError):
    def __init__(self, label: str, line: int, error: csv.Error) -> None:
        # Only a strict reader notices the end of the file inside a quoted cell.
        self.unclosed_quote = "end of data" in str(error)
        reason = "a quote opened and never closed" if self.unclosed_quote else str(error)
        super().__init__(f"{label}: not a readable CSV/TSV file (line {line}: {reason})")


def _records(
    text: str, delimiter: str, label: str, *, strict: bool, skip_padding: bool = False
) -> list[list[str]]:
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=delimiter, strict=strict, skipinitialspace=skip_padding
    )
    records: list[list[str]] = []
    starts_on = 1  # the line the record being read starts on
    try:
        for record in reader:
            records.append(record)
            starts_on = reader.line_num + 1
    except csv.Error as exc:
        raise _CsvProblem(label, starts_on, exc) from None
    return records


def _cell(record: list[str], index: int) -> str | None:
    return (record[index] or None) if index < len(record) else None
