"""`bookwarm warm` rejects bad input before starting any server or flow (exit 2, one line).

Through the CLI's own entry point in this process, with an environment that configures nothing (a
process each cost 2 s of CPU for what is argument checking); the last test runs the real process,
so the exit code and the one stderr line are also seen from outside."""

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

import pytest

from bookwarm.cli.main import main
from tests.conftest import FIXTURES


@dataclass
class Ran:
    returncode: int
    stderr: str


def run(*args, home, monkeypatch, capsys) -> Ran:
    """``bookwarm ARGS`` as a user with nothing configured runs it: no BOOKWARM_ or PREFECT_ API
    settings, a home of its own."""
    for name in list(os.environ):
        if name.startswith(("BOOKWARM_", "PREFECT_API_URL")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BOOKWARM_HOME", str(home))
    monkeypatch.setenv("HOME", str(home))
    handler = signal.getsignal(signal.SIGTERM)
    try:
        code = main(list(args))
    finally:
        signal.signal(signal.SIGTERM, handler)  # main() installs its own
    return Ran(code, capsys.readouterr().err)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["warm", str(FIXTURES / "exports/goodreads.csv"), "--max-depth", "5"],
            "--max-depth must be between 1 and 3",
        ),
        (
            ["warm", str(FIXTURES / "exports/goodreads.csv"), "--max-depth", "0"],
            "--max-depth must be between 1 and 3",
        ),
        (["warm", "/no/such/file.csv"], "file not found"),
        (["warm-authors", "Neil Gaiman", "--max-depth", "9"], "--max-depth must be between 0 and 3"),
        (["warm-authors", '=HYPERLINK("x")'], "not a name: '?HYPERLINK"),
        (["warm-authors", "Neil\nGaiman"], "not a name: 'Neil?Gaiman'"),
        (["warm-authors", "x" * 5000], "not a name: 'xxxxxxxxxxxxxxxxxxxxxxxx…'"),
        (
            ["review", "resolve", "Neil\r\n=cmd|' /C calc'!A0", "--openlibrary-key", "OL1A"],
            'not a name: "Neil???cmd?',
        ),
        (["review", "resolve", "Neil Gaiman", "--openlibrary-key", "../etc"], "looks like OL23919A"),
        (["warm-demand", "--max-authors", "0"], "--max-authors must be between 1 and 100000"),
        (["warm-demand", "--max-depth", "4"], "--max-depth must be between 0 and 3"),
        (["refresh", "--since", "2026-13-01"], "--since must be a day as YYYY-MM-DD"),
        (
            ["refresh", "--since", "yesterday; rm -rf /"],
            "--since must be a day as YYYY-MM-DD, got 'yesterday; rm -rf /'",
        ),
    ],
)
def test_rejected_before_any_work(tmp_path, args, message, monkeypatch, capsys):
    proc = run(*args, home=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "services.json").exists()  # nothing was started


def test_lookup_without_any_cache_configured_says_how_to_fix_it(tmp_path):
    """A real process, as a user runs it: exit 2, one line on stderr, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "bookwarm", "lookup", "author", "Neil Gaiman"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "BOOKWARM_HOME": str(tmp_path), "HOME": str(tmp_path)},
    )
    assert proc.returncode == 2
    assert "bookwarm services up" in proc.stderr and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
