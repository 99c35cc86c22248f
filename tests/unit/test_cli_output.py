"""Terminal output: rich on a terminal, plain lines otherwise; cells are text, never markup."""

from __future__ import annotations

import io
import sys

from bookwarm.cli import output


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
