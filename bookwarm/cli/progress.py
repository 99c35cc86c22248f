"""Progress of a warm on stderr, one row per depth: authors done of the level's total, authors/s, ETA,
and how many were warmed, skipped, partial, review, unknown or failed: the job summary's counts, fed
only by authors the job counted (an author re-run as done is not shown twice).

On a terminal it is a rich live display; otherwise (a log file, a pipe, CI) a plain line every few
seconds, so logs stay readable, and each level's last line when the job ends. Fed by finished
authors (in-process listeners) and the job's record in Redis: how many authors each depth has
queued so far (levels overlap, and a level grows while the one before it runs), read again at most
every TOTALS_EVERY_S.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TextIO

import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from bookwarm.keys import Keys
from bookwarm.warming.jobs import queued_at
from bookwarm.warming.outcome import AuthorOutcome

SHOWN = ("warmed", "skipped", "partial", "review", "unknown", "failed")  # the summary's, by the same names
PLAIN_EVERY_S = 5.0
TOTALS_EVERY_S = 1.0


class _Level:
    def __init__(self, total: int, started: float) -> None:
        self.total = total
        self.done = 0
        self.counts: Counter[str] = Counter()
        self.started = started  # its first author's end: levels overlap, so no earlier moment is its own
        self.task: TaskID | None = None

    def counts_text(self) -> str:
        return "  ".join(f"{name} {self.counts[name]}" for name in SHOWN)

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0


class ProgressBar:
    def __init__(self, redis_url: str, keys: Keys, stream: TextIO = sys.stderr) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.keys = keys
        self.stream = stream
        self.tty = stream.isatty()
        self.levels: dict[int, _Level] = {}
        self.last_plain = 0.0
        self.totals_read = 0.0
        self.progress: Progress | None = None
        self.closed = False
        if self.tty:
            self.progress = Progress(
                TextColumn("depth {task.fields[depth]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("authors  {task.fields[rate]:.1f}/s"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[counts]}"),
                console=Console(file=stream),
                transient=False,
            )
            self.progress.start()

    def __call__(self, job_id: str, outcome: AuthorOutcome) -> None:
        level = self.levels.get(outcome.depth)
        if level is None:
            level = self.levels[outcome.depth] = _Level(1, time.monotonic())
            self.totals_read = 0.0  # a new depth: its total now
            if self.progress is not None:
                level.task = self.progress.add_task(
                    "", total=level.total, depth=outcome.depth, rate=0.0, counts=level.counts_text()
                )
        self._read_totals(job_id)
        level.done += 1
        level.counts[outcome.status] += 1
        if self.progress is not None and level.task is not None:
            self.progress.update(
                level.task,
                completed=level.done,
                total=max(level.total, level.done),
                rate=level.rate(),
                counts=level.counts_text(),
            )
        elif time.monotonic() - self.last_plain >= PLAIN_EVERY_S:
            self.last_plain = time.monotonic()
            self._plain(outcome.depth, level)

    def _read_totals(self, job_id: str) -> None:
        """Each shown depth's total: what the job has queued at it so far."""
        if time.monotonic() - self.totals_read < TOTALS_EVERY_S:
            return
        self.totals_read = time.monotonic()
        depths = sorted(self.levels)
        queued = self.client.hmget(self.keys.job(job_id), [queued_at(d) for d in depths])
        for depth, total in zip(depths, queued, strict=True):
            if total is not None:
                self.levels[depth].total = max(1, int(total))

    def _plain(self, depth: int, level: _Level) -> None:
        rate = level.rate()
        left = max(0, level.total - level.done)
        eta = f"{int(left / rate // 60)}:{int(left / rate % 60):02d}" if rate > 0 else "?"
        self.stream.write(
            f"[depth {depth}] {level.done}/{level.total} authors  {rate:.1f}/s  ETA {eta}  {level.counts_text()}\n"
        )
        self.stream.flush()

    def close(self) -> None:
        """Idempotent. Plain output ends with each level's final counts (the same as the summary's)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        elif not self.tty and not self.closed:
            for depth, level in sorted(self.levels.items()):
                self._plain(depth, level)
        self.closed = True
        self.client.close()
