"""A progress bar with ETA on stderr, fed by finished authors and the job's record in Redis."""

from __future__ import annotations

import sys
import time

import redis

from bookwarm.keys import Keys
from bookwarm.warming.outcome import AuthorOutcome


class ProgressBar:
    def __init__(self, redis_url: str, keys: Keys, stream=sys.stderr) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.keys = keys
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.done = 0
        self.last_line = ""

    def __call__(self, job_id: str, outcome: AuthorOutcome) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last_draw < (0.2 if self.tty else 5.0):
            return
        self.last_draw = now
        queued = int(self.client.hget(self.keys.job(job_id), "authors_queued") or 0) or self.done
        self.draw(queued, outcome.depth)

    def draw(self, queued: int, depth: int) -> None:
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        remaining = max(0, queued - self.done)
        eta = f"{int(remaining / rate // 60)}:{int(remaining / rate % 60):02d}" if rate > 0 else "?"
        width = 30
        filled = int(width * min(1.0, self.done / max(1, queued)))
        line = f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{queued} authors  depth {depth}  {rate:.1f}/s  ETA {eta}"
        if self.tty:
            self.stream.write("\r" + line.ljust(len(self.last_line)))
        else:
            self.stream.write(line + "\n")
        self.last_line = line
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.last_line:
            self.stream.write("\n")
        self.client.close()
