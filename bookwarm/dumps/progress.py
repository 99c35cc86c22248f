"""How far a dump load is, for whoever shows it: the CLI's lines on stderr, the flow's Prefect log
lines and progress artifact. Reading the files is most of a load's time, so progress is the bytes
read of each file (their compressed size on disk, which is what ``ls`` shows), then authors written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class DumpProgress:
    stage: str  # "authors (names)", "works", "authors (co-authors)", "redirects", "write"
    done: int  # bytes read, or authors written
    total: int
    rows: int = 0  # rows read so far in this stage (reading stages)
    started: float = 0.0  # time.monotonic() when the stage began

    @property
    def share(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 1.0

    @property
    def eta_s(self) -> float | None:
        elapsed = time.monotonic() - self.started
        if not self.done or elapsed <= 0:
            return None
        return max(0.0, elapsed * (self.total - self.done) / self.done)

    def line(self) -> str:
        unit = "authors written" if self.stage == "write" else "MB read"
        scale = 1 if self.stage == "write" else 1 << 20
        eta = self.eta_s
        text = f"dump {self.stage}: {self.done / scale:,.0f} of {self.total / scale:,.0f} {unit} ({self.share:.0%})"
        if self.rows:
            text += f", {self.rows:,} rows"
        return text + (f", ETA {eta:,.0f} s" if eta is not None and self.share < 1 else "")


Listener = Callable[[DumpProgress], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def notify(progress: DumpProgress) -> None:
    for listener in list(_listeners):
        listener(progress)
