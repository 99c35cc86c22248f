"""Every library the shipped code imports is declared in pyproject.toml: a library that only comes
with another (SQLAlchemy and starlette with Prefect) could be dropped by it in any release."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from tests.conftest import PROJECT

SHIPPED = ("bookwarm", "flows", "tasks", "blocks", "deployments")


def _imported_top_levels() -> dict[str, str]:
    """Top-level module -> a file that imports it."""
    found: dict[str, str] = {}
    for package in SHIPPED:
        for path in (PROJECT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(PROJECT)))
    return found


def _declared() -> set[str]:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {
        re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].lower().replace("_", "-")
        for spec in project["dependencies"]
    }


def test_every_imported_library_is_declared() -> None:
    distributions = packages_distributions()
    declared = _declared()
    missing = {}
    for module, where in _imported_top_levels().items():
        if module in sys.stdlib_module_names or module in SHIPPED or module == "__future__":
            continue
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not names & declared:
            missing[module] = where
    assert not missing, f"imported, not declared in pyproject.toml: {missing}"
