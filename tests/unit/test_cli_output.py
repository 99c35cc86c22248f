"""Terminal output: rich on a terminal, plain lines otherwise; cells are text, never markup."""

from __future__ import annotations

import io
import sys

from bookwarm.cli import output
from bookwarm.cli.progress import ProgressBar
from bookwarm.keys import Keys
from bookwarm.warming.outcome import AuthorOutcome


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tables_are_plain_when_stdout_is_not_a_terminal(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    output.print_table(("name", "books"), [("[bold]Ann[/bold]", 3), ("Bo", 12)])
    assert out.getvalue().splitlines() == [
        "name              books",
        "[bold]Ann[/bold]  3    ",
        "Bo                12   ",
    ]


def test_tables_are_rich_on_a_terminal_and_cells_are_not_markup(monkeypatch):
    out = Tty()
    monkeypatch.setattr(sys, "stdout", out)
    output.print_table(("name", "books"), [("[bold]Ann[/bold]", 3)])
    text = out.getvalue()
    assert "[bold]Ann[/bold]" in text and ("┃" in text or "│" in text)  # a box, and the cell as written


def test_progress_is_plain_lines_per_depth_when_not_a_terminal():
    """No Redis needed for the plain path beyond the level's total, read once per level."""

    class Record:
        def hget(self, key, field):
            return b"4"

        def close(self):
            pass

    stream = io.StringIO()
    bar = ProgressBar("redis://127.0.0.1:9/0", Keys(), stream)  # redis-py connects lazily: never here
    bar.client.close()
    bar.client = Record()  # the job record's authors_queued
    bar.last_plain = -1e9
    bar("job", AuthorOutcome("Ann", "ann", 0, "warmed"))
    bar.last_plain = -1e9
    bar("job", AuthorOutcome("Bo", "bo", 0, "failed"))
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[depth 0] 1/4 authors") and "warmed 1" in lines[0]
    assert lines[1].startswith("[depth 0] 2/4 authors") and "failed 1" in lines[1]
    bar.close()
