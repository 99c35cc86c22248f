"""`bookwarm warm` rejects bad input before starting any server or flow (exit 2, one line)."""

import subprocess
import sys

import pytest

from tests.conftest import FIXTURES


def run(*args, home):
    return subprocess.run(
        [sys.executable, "-m", "bookwarm", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "BOOKWARM_HOME": str(home), "HOME": str(home)},
    )


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
def test_rejected_before_any_work(tmp_path, args, message):
    proc = run(*args, home=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "services.json").exists()  # nothing was started


def test_lookup_without_any_cache_configured_says_how_to_fix_it(tmp_path):
    proc = run("lookup", "author", "Neil Gaiman", home=tmp_path)
    assert proc.returncode == 2
    assert "bookwarm services up" in proc.stderr
