"""What warming one author produced; also the payload of its Prefect event."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class AuthorOutcome:
    name: str
    key: str
    depth: int
    status: str  # warmed | skipped | partial | review | unknown: also the job counter it adds to
    works: int = 0
    coauthors: list[dict[str, str]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    provider_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    reason: str | None = None
    openlibrary_key: str | None = None
    bibliography: dict[str, Any] | None = None  # what was cached, for enrichment; never emitted
    counted: bool = True  # False when the job had already counted this author (a re-run as done)

    def to_dict(self) -> dict[str, Any]:
        """Shallow: ``dataclasses.asdict`` would deep-copy a bibliography of thousands of works."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
