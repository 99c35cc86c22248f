"""`bookwarm parse` through the real entry point: JSON shape, exit codes, one-line errors."""

import json
import subprocess
import sys

import pytest

from bookwarm.cli.main import main
from tests.conftest import FIXTURES


def test_parse_json_shape(capsys):
    assert main(["parse", str(FIXTURES / "exports/goodreads.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"format", "rows", "authors", "isbns", "rejected"}
    assert out["format"] == "goodreads" and out["rows"] == 5
    assert {"name": "J.K. Rowling", "key": "j-k-rowling", "books": 2} in out["authors"]
    assert out["rejected"] == [{"row": 6, "reason": "no author; invalid ISBN '0000000001'"}]


def test_parse_human_output(capsys):
    assert main(["parse", str(FIXTURES / "exports/storygraph.csv")]) == 0
    out = capsys.readouterr().out
    assert "format:   storygraph" in out and "Ursula K. Le Guin" in out


@pytest.mark.parametrize("content", [b"", b"\x00\xff" * 100, b"colour,size\nred,3\n"])
def test_bad_input_exits_2_with_one_line(tmp_path, content):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    proc = subprocess.run(
        [sys.executable, "-m", "bookwarm", "parse", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("bookwarm: error: ")
    assert "Traceback" not in proc.stderr


def test_size_limit_from_environment(monkeypatch, capsys):
    monkeypatch.setenv("BOOKWARM_MAX_UPLOAD_MB", "0.0001")
    assert main(["parse", str(FIXTURES / "exports/goodreads.csv")]) == 2
    assert "over the" in capsys.readouterr().err


def test_demo_and_fake_providers_find_their_samples_from_any_folder(tmp_path, monkeypatch):
    """`bookwarm demo` run outside the project's folder failed on a relative catalog path."""
    from pathlib import Path

    from bookwarm.cli.main import build_parser

    monkeypatch.chdir(tmp_path)
    demo = build_parser().parse_args(["demo"])
    serve = build_parser().parse_args(["providers", "serve"])
    assert Path(demo.file).is_file() and demo.catalog.is_file() and serve.catalog.is_file()
