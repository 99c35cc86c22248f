"""The README names every setting the resolver reads and every flag the CLI takes: a new one
without its line fails here, not at a user's."""

from __future__ import annotations

import argparse
from dataclasses import fields

from bookwarm.cli.main import build_parser
from bookwarm.settings import PROVIDERS, SECTIONS, env_name
from tests.conftest import PROJECT

README = (PROJECT / "README.md").read_text(encoding="utf-8")


def _documented(name: str, prefixes: tuple[str, ...]) -> bool:
    """The whole name, or its suffix on a line that names its family (`BOOKWARM_<PROVIDER>_RPS`,
    `BOOKWARM_GEMINI_CHUNK_ROWS` / `_CONCURRENCY`)."""
    if name in README:
        return True
    suffix = name.removeprefix(prefixes[0])
    return any(f"_{suffix}" in line and any(p in line for p in prefixes) for line in README.splitlines())


def test_every_setting_is_in_the_readme() -> None:
    missing = []
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            name = env_name(section, f.name)
            prefix = PROVIDERS[section]["env"] + "_" if section in PROVIDERS else name.rsplit("_", 1)[0] + "_"
            family = (
                (prefix, "BOOKWARM_<PROVIDER>_")
                if section in PROVIDERS
                else (prefix, f"BOOKWARM_{section.upper()}_")
            )
            if not _documented(name, family):
                missing.append(name)
    assert not missing, missing


def _options(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, str]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _options(sub, f"{path} {name}".strip())
        found += [(path, opt) for opt in action.option_strings if opt.startswith("--") and opt != "--help"]
    return found


def test_every_flag_is_in_the_readme() -> None:
    missing = [(command, flag) for command, flag in _options(build_parser(), "") if flag not in README]
    assert not missing, missing
