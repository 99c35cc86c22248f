"""Benchmarks (`make bench-*`): figures, never assertions. Not collected by pytest."""

import signal
import sys


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so the benchmark's `finally` stops the servers it started."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def reference_ms() -> float:
    """Milliseconds for a fixed pure-Python workload (best of 3): this machine's speed drifts by a
    third from one half hour to the next, so figures from different runs compare only next to it."""
    import hashlib
    import time

    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        digest = b""
        for i in range(100_000):
            digest = hashlib.sha1(digest + i.to_bytes(4, "little")).digest()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def target(label: str, figure: str, ok: bool) -> bool:
    """One target beside its figure, PASS or FAIL, so a reader needs no prose to know."""
    print(f"target: {label}: {figure} {'PASS' if ok else 'FAIL'}", flush=True)
    return ok
