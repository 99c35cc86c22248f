"""CPU seconds per process, read from /proc: where two cores go during a benchmark phase.

On two cores the warm benchmark is CPU-bound across several processes (this one, the Prefect
server, Redis, the S3 server, the fake providers), so wall time alone cannot say what to speed up.
Linux only; elsewhere the report is empty.
"""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _tree(pid: int) -> list[int]:
    """pid and all its descendants (servers such as `prefect server start` fork workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _named(command: str) -> list[int]:
    """Processes whose command name is ``command`` (PostgreSQL runs one backend per connection)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*/comm"):
        try:
            if entry.read_text().strip() == command:
                found.append(int(entry.parent.name))
        except OSError:
            continue
    return found


def snapshot(processes: dict[str, int | str]) -> dict[str, float]:
    """{label: CPU seconds so far} per labelled process tree (a pid) or per command name (a str)."""
    if not Path("/proc/self/stat").exists():
        return {}
    result = {}
    for label, what in processes.items():
        if isinstance(what, str):
            pids = _named(what)
        elif what == os.getpid():
            pids = [what]  # this process: its own threads only
        else:
            pids = _tree(what) if what else []
        if pids:
            result[label] = sum(_cpu_s(p) for p in pids)
    return result


def report(before: dict[str, float], after: dict[str, float], wall_s: float, units: int) -> str:
    """One line per process: CPU seconds, share of one core over the wall time, ms per unit of work."""
    lines = []
    total = 0.0
    for label in after:
        used = after[label] - before.get(label, 0.0)
        total += used
        lines.append(
            f"    {label:<16} {used:6.1f} s CPU  {used / wall_s:4.0%} of a core  {used / units * 1000:5.1f} ms/author"
        )
    lines.append(
        f"    {'all':<16} {total:6.1f} s CPU  {total / wall_s:4.0%} of a core  {total / units * 1000:5.1f} ms/author"
    )
    return "\n".join(lines)
