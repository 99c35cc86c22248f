"""Benchmarks (`make bench-*`): figures, never assertions. Not collected by pytest."""

import signal
import sys


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so the benchmark's `finally` stops the servers it started."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
