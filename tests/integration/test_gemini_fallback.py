"""The Gemini fallback through google-genai, against a local server answering in the real format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from bookwarm.errors import ConfigError, InputError, ParseError
from bookwarm.parsing.ingest import parse_library
from bookwarm.parsing.llm import GeminiFallback, LLMLimits, gemini_fallback
from bookwarm.settings import GeminiSettings
from tests.conftest import FIXTURES
from tests.fakes.gemini_server import GeminiFaults, GeminiServer

MESSY = FIXTURES / "messy"
KEY = "test-gemini-key-not-real"


@pytest.fixture(scope="module")
def gemini():
    with GeminiServer() as server:
        yield server


@pytest.fixture
def settings(gemini) -> GeminiSettings:
    gemini.reset()
    return GeminiSettings(base_url=gemini.url, api_key=SecretStr(KEY), model="gemini-2.5-flash", chunk_rows=2)


def parse(path: Path, settings: GeminiSettings, **kw):
    return parse_library(path, fallback=gemini_fallback(settings), **kw)


def test_hand_typed_list_in_several_chunks_merged_in_row_order(gemini, settings):
    parsed = parse(MESSY / "hand_typed.txt", settings)
    assert parsed.format == "llm"
    titles = [r.title for r in parsed.records()]
    assert titles == ["The Left Hand of Darkness", "Dune", "Kindred", "Good Omens", "Piranesi"]
    assert [r.row for r in parsed.records()] == [2, 3, 4, 5, 7]  # line numbers; line 6 is blank
    assert {a.key for a in parsed.authors} >= {
        "ursula-k-le-guin",
        "terry-pratchett",
        "neil-gaiman",
        "susanna-clarke",
    }
    assert parsed.isbns == ["9780807083697"]
    assert [(r.row, "no book found" in r.reason) for r in parsed.rejected] == [(1, True)]  # the title line
    assert gemini.faults.calls == 3  # 6 lines in chunks of 2
    assert gemini.faults.keys_seen == {KEY}


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("title_by_author.csv", {"j-r-r-tolkien", "toni-morrison", "madeline-miller"}),
        ("foreign_headers.csv", {"hermann-hesse", "gunter-grass", "michael-ende"}),
        ("author_dash_title.txt", {"ursula-k-le-guin", "stephen-king", "jane-austen"}),
    ],
)
def test_messy_files_no_rule_understands(settings, fixture, expected):
    parsed = parse(MESSY / fixture, settings)
    assert parsed.format == "llm"
    assert {a.key for a in parsed.authors} == expected


def test_a_rule_file_never_calls_gemini_unless_forced(gemini, settings):
    assert parse(FIXTURES / "exports/goodreads.csv", settings).format == "goodreads"
    assert gemini.faults.calls == 0
    assert parse(FIXTURES / "exports/goodreads.csv", settings, force_fallback=True).format == "llm"


def test_dropped_and_invented_rows_are_reported(gemini, settings):
    gemini.reset(GeminiFaults(drop_rows={3}, invent_rows={999}))
    parsed = parse(MESSY / "hand_typed.txt", settings)
    reasons = {r.row: r.reason for r in parsed.rejected}
    assert "no book found" in reasons[3] and "invented" in reasons[999]
    assert 999 not in [r.row for r in parsed.records()] and "Dune" not in [r.title for r in parsed.records()]


def test_safety_block_rejects_that_chunk_only(gemini, settings):
    gemini.reset(GeminiFaults(safety_on_row=4))
    parsed = parse(MESSY / "hand_typed.txt", settings)
    reasons = {r.row: r.reason for r in parsed.rejected}
    assert "SAFETY" in reasons[3] and "SAFETY" in reasons[4]  # rows 3-4 were one chunk
    assert {"The Left Hand of Darkness", "Good Omens", "Piranesi"} <= {r.title for r in parsed.records()}


def test_malformed_json_retried_once_then_rejected(gemini, settings):
    gemini.reset(GeminiFaults(malformed_answers=1))
    ok = parse(MESSY / "title_by_author.csv", settings)
    assert len(ok.authors) == 3  # one bad answer, retried
    gemini.reset(GeminiFaults(malformed_answers=100))
    bad = parse(MESSY / "title_by_author.csv", settings)
    assert bad.authors == [] and all("malformed JSON" in r.reason for r in bad.rejected)


def test_truncated_answer_is_split_not_lost(gemini, settings):
    gemini.reset(GeminiFaults(max_output_chars=120))  # answers of 2 rows do not fit: halves do
    big = GeminiSettings(**{**settings.__dict__, "chunk_rows": 100})
    parsed = parse(MESSY / "hand_typed.txt", big)
    assert [r.title for r in parsed.records()] == [
        "The Left Hand of Darkness",
        "Dune",
        "Kindred",
        "Good Omens",
        "Piranesi",
    ]


def load_error(shared, name):
    return json.loads((shared / "api/gemini" / name).read_text())


@pytest.mark.parametrize(
    ("fixture", "exc", "message"),
    [
        ("firebase_googleai_unary-failure-api-key.json", ConfigError, "rejected the API key"),
        ("firebase_googleai_unary-failure-generativelanguage-api-not-enabled.json", ConfigError, "403"),
        ("firebase_googleai_unary-failure-unknown-model.json", ConfigError, "not found"),
    ],
)
def test_provider_errors_map_to_clear_messages(gemini, settings, shared_fixtures, fixture, exc, message):
    gemini.reset(GeminiFaults(error_body=load_error(shared_fixtures, fixture)))
    with pytest.raises(exc, match=message) as info:
        parse(MESSY / "hand_typed.txt", settings)
    assert KEY not in str(info.value)


def test_rate_limited_is_retried(gemini, settings, shared_fixtures):
    body = {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}
    gemini.reset(GeminiFaults(error_body=body, errors_before_success=1))
    parsed = parse(MESSY / "title_by_author.csv", GeminiSettings(**{**settings.__dict__, "chunk_rows": 100}))
    assert len(parsed.authors) == 3 and gemini.faults.calls == 2


def test_empty_candidates_are_rejected_rows(gemini, settings, shared_fixtures):
    from tests.fakes import gemini_server

    body = load_error(shared_fixtures, "firebase_googleai_unary-failure-only-prompt-feedback.json")
    original = gemini_server._answer
    gemini_server._answer = lambda text, finish: body
    try:
        parsed = parse(MESSY / "title_by_author.csv", settings)
    finally:
        gemini_server._answer = original
    assert parsed.authors == [] and all("prompt blocked" in r.reason for r in parsed.rejected)


def test_no_key_fails_in_one_line_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bookwarm", "parse", str(MESSY / "hand_typed.txt")],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 2
    assert "BOOKWARM_GEMINI_API_KEY" in proc.stderr and proc.stderr.count("\n") == 1


def test_guard_refuses_before_any_call(gemini, settings):
    small = GeminiFallback(settings, LLMLimits(max_rows=3))
    with pytest.raises(InputError, match="over the Gemini fallback's limit of 3 rows"):
        parse_library(MESSY / "hand_typed.txt", fallback=lambda: small)
    tokens = GeminiFallback(settings, LLMLimits(max_tokens_per_file=50))
    with pytest.raises(InputError, match="tokens"):
        parse_library(MESSY / "hand_typed.txt", fallback=lambda: tokens)
    assert gemini.faults.calls == 0


def test_cli_parse_json_reports_llm_format(gemini, settings, tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "BOOKWARM_GEMINI_API_KEY": KEY,
        "BOOKWARM_GEMINI_URL": gemini.url,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bookwarm", "parse", str(MESSY / "foreign_headers.csv"), "--json"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["format"] == "llm" and set(data) == {"format", "rows", "authors", "isbns", "rejected"}
    assert KEY not in proc.stdout + proc.stderr


def test_no_rule_and_no_fallback_is_a_parse_error():
    with pytest.raises(ParseError, match="no recognisable author column"):
        parse_library(MESSY / "foreign_headers.csv")
