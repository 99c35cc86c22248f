"""Read one OpenLibrary dump file as it is published: gzipped, five tab-separated columns (type,
key, revision, last_modified, JSON), streamed in chunks of lines, never the whole file in memory.

A chunk of decompressed bytes (cut at its last newline) is read by polars as one column of lines,
then split on tabs: rows with another column count are counted and skipped, never fatal (real
dumps hold some). JSON is not parsed here: callers pick the rows they want first (polars filters
cost a fraction of ``json.loads`` per row) and parse only those (``records``).
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from bookwarm.errors import DumpError

COLUMNS = ("type", "key", "revision", "last_modified", "json")
CHUNK_BYTES = 32 << 20  # decompressed bytes a chunk: ~30,000 works rows, ~60 MB of polars frame
# A byte no dump line holds (JSON escapes control characters): polars reads each line whole.
_NO_SEPARATOR = "\x1f"


@dataclass
class ReadCounts:
    """What a pass over one file saw: the figures the progress line and the summary show."""

    path: str
    bytes_total: int  # the file's size on disk (compressed)
    bytes_read: int = 0
    rows: int = 0
    skipped: int = 0  # another column count than five
    newest: str = ""  # the newest last_modified read (ISO text compares in time order)

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


Progress = Callable[[ReadCounts], None]


def read_chunks(
    path: Path, *, chunk_bytes: int = CHUNK_BYTES, progress: Progress | None = None
) -> Iterator[tuple[pl.DataFrame, ReadCounts]]:
    """Yields (rows, counts so far) a chunk at a time; raises DumpError, in one line, for a file
    that is missing, truncated, corrupt or not a dump."""
    counts = ReadCounts(str(path), _size(path))
    with _open(path) as (raw, stream):
        carry = b""
        probed = False  # a file with no dump row in its first chunk is not a dump
        while True:
            block = _read(stream, chunk_bytes, path, counts)
            data = carry + block
            if not block:
                carry = b""
            else:
                cut = data.rfind(b"\n") + 1
                data, carry = (data[:cut], data[cut:]) if cut else (b"", data)
            if data:
                frame = _split(data, counts)
                if not probed:
                    probed = True
                    if frame.is_empty():
                        raise DumpError(
                            f"{path} is not an OpenLibrary dump (no tab-separated type/key/JSON rows)"
                        )
                counts.bytes_read = raw.tell()
                if progress is not None:
                    progress(counts)
                yield frame, counts
            if not block:
                counts.bytes_read = counts.bytes_total
                return


def _split(data: bytes, counts: ReadCounts) -> pl.DataFrame:
    lines = pl.read_csv(
        io.BytesIO(data),
        separator=_NO_SEPARATOR,
        has_header=False,
        quote_char=None,
        new_columns=["line"],
        schema_overrides=[pl.String],
        truncate_ragged_lines=True,
        encoding="utf8-lossy",
    )
    good = lines.filter(pl.col("line").str.count_matches("\t", literal=True) == len(COLUMNS) - 1)
    frame = (
        good.select(pl.col("line").str.splitn("\t", len(COLUMNS)).struct.rename_fields(list(COLUMNS)))
        .unnest("line")
        .filter(pl.col("type").str.starts_with("/type/"))
    )
    counts.rows += lines.height
    counts.skipped += lines.height - frame.height
    if frame.height:
        newest = frame.get_column("last_modified").max()
        if isinstance(newest, str) and newest > counts.newest:
            counts.newest = newest
    return frame


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        raise DumpError(f"no such dump file: {path}") from None
    except OSError as exc:
        raise DumpError(f"cannot read dump file {path}: {exc.strerror or exc}") from None


class _open:
    """(the file on disk, its decompressed stream): gzip when the file says so, else plain text."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> tuple[io.BufferedReader, io.BufferedIOBase]:
        try:
            self.raw = open(self.path, "rb")
        except OSError as exc:
            raise DumpError(f"cannot read dump file {self.path}: {exc.strerror or exc}") from None
        magic = self.raw.peek(2)[:2]
        self.stream: io.BufferedIOBase = (
            gzip.GzipFile(fileobj=self.raw, mode="rb") if magic == b"\x1f\x8b" else self.raw
        )
        return self.raw, self.stream

    def __exit__(self, *exc: object) -> None:
        self.stream.close()
        self.raw.close()


def _read(stream: io.BufferedIOBase, size: int, path: Path, counts: ReadCounts) -> bytes:
    try:
        return stream.read(size)
    except EOFError:
        raise DumpError(
            f"{path} is truncated (it ends after {counts.rows:,} rows): download it again"
        ) from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DumpError(f"{path} is not a readable gzip file ({exc}): download it again") from None
    except OSError as exc:
        raise DumpError(f"cannot read dump file {path}: {exc.strerror or exc}") from None


def estimate_rows(path: Path, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Rows in the whole file, from its first chunk (its rows per compressed byte): how a spill
    sizes its partitions before it reads the file. Exact for a file of one chunk."""
    for _frame, counts in read_chunks(path, chunk_bytes=chunk_bytes):
        return max(counts.rows, round(counts.rows * counts.bytes_total / max(1, counts.bytes_read)))
    return 0
