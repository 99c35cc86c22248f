"""A library job takes at most BOOKWARM_MAX_JOB_AUTHORS distinct authors: a larger export is refused
in one line before anything is parsed at length, uploaded or queued (a 2-million-author file took
250 s and 2.26 GB before it was ever refused)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from bookwarm.cli.main import main
from bookwarm.errors import ParseError
from bookwarm.parsing.ingest import CELLS_PER_AUTHOR, parse_library
from bookwarm.settings import resolve


def library(path: Path, names: list[str]) -> Path:
    path.write_text("Title,Author,ISBN\n" + "".join(f"Book {i},{name},\n" for i, name in enumerate(names)))
    return path


def distinct(count: int) -> list[str]:
    """``count`` distinct names, at most 17,576."""
    return [
        f"Writer {chr(65 + i % 26)}{chr(97 + i // 26 % 26)}{chr(97 + i // 676 % 26)} Smith"
        for i in range(count)
    ]


def test_a_library_within_the_bound_parses_and_one_over_it_is_refused(tmp_path):
    names = distinct(50)
    path = library(tmp_path / "fifty.csv", names)
    assert len(parse_library(path, max_authors=50).authors) == 50
    with pytest.raises(ParseError) as refused:
        parse_library(path, max_authors=49)
    message = str(refused.value)
    assert "\n" not in message and "49" in message and "BOOKWARM_MAX_JOB_AUTHORS" in message


def test_the_bound_counts_authors_not_rows_nor_spellings(tmp_path):
    """Rows repeating an author, and one author written two ways, count once."""
    names = distinct(10)
    repeated = names * 20 + [n.lower().replace(" ", "  ") for n in names]  # 210 rows, 20 cells, 10 authors
    path = library(tmp_path / "repeated.csv", repeated)
    assert len(parse_library(path, max_authors=10).authors) == 10
    with pytest.raises(ParseError):
        parse_library(path, max_authors=9)


def test_far_over_the_bound_a_file_is_refused_on_its_cells_before_names_are_parsed(tmp_path):
    """Millions of distinct names would take minutes and gigabytes to parse: far over the bound, the
    count of distinct cells (polars) refuses the file first; near it, the exact count of authors."""
    names = distinct(400)
    path = library(tmp_path / "many.csv", names)
    with pytest.raises(ParseError, match="400 distinct author cells"):
        parse_library(path, max_authors=400 // CELLS_PER_AUTHOR - 1)
    with pytest.raises(ParseError, match=r"\(400 authors\)"):
        parse_library(path, max_authors=399)


def test_warm_refuses_an_oversized_library_in_one_line_before_any_server_starts(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("BOOKWARM_MAX_JOB_AUTHORS", "5")
    monkeypatch.setenv("BOOKWARM_HOME", str(tmp_path / "home"))
    path = library(tmp_path / "six.csv", distinct(6))
    assert main(["warm", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "more than 5 distinct authors" in err
    assert not (tmp_path / "home").exists()  # no local service was started, nothing uploaded or queued


def test_a_deployment_run_is_refused_by_its_parse_task_before_its_job_starts(tmp_path):
    """The UI or REST API path: the flow's parse task refuses (InputError: not retried), so no job
    record is written."""
    from tasks.parse_source import parse_source

    settings = resolve({"BOOKWARM_MAX_JOB_AUTHORS": "5"})
    source = "base64:" + base64.b64encode(library(tmp_path / "six.csv", distinct(6)).read_bytes()).decode()
    with pytest.raises(ParseError, match="more than 5 distinct authors"):
        asyncio.run(parse_source.fn(source, settings))
    settings = resolve({"BOOKWARM_MAX_JOB_AUTHORS": "6"})
    assert len(asyncio.run(parse_source.fn(source, settings))["authors"]) == 6
