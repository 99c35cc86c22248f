"""What warming one author produced; also the payload of its Prefect event."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# status -> job counter it increments
COUNTER = {
    "warmed": "warmed",
    "skipped": "skipped",
    "partial": "partial",
    "review": "partial",
    "unknown": "unknown",
}


@dataclass
class AuthorOutcome:
    name: str
    key: str
    depth: int
    status: str  # warmed | skipped | partial | review | unknown
    works: int = 0
    coauthors: list[dict[str, str]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    provider_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
