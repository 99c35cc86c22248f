"""A flow process whose worker died (its stdout and stderr pipes broken) logs on and finishes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CHILD = """
import logging, sys
from prefect.logging.configuration import setup_logging
setup_logging()
if sys.argv[1] == "harden":
    from flows.lost_console import outlive_a_lost_console
    outlive_a_lost_console()
print("ready", flush=True)
sys.stdin.readline()  # the parent has closed its ends of stdout and stderr
for i in range(3):
    logging.getLogger("prefect.bookwarm-test").warning("line %d", i)
print("still printing")
open(sys.argv[2], "w").write("finished")
"""


@pytest.mark.parametrize("harden", [True, False], ids=["hardened", "prefect-as-is"])
def test_a_broken_console_pipe_ends_the_process_only_when_not_hardened(tmp_path: Path, harden: bool) -> None:
    done = tmp_path / "done"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, "harden" if harden else "as-is", str(done)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None and child.stderr is not None
    try:
        assert child.stdout.readline().strip() == "ready"
        child.stdout.close()  # what a SIGKILLed worker leaves its flow run
        child.stderr.close()
        child.stdin.write("go\n")
        child.stdin.close()
        code = child.wait(timeout=60)
    finally:
        child.kill()
    if harden:
        assert (code, done.read_text()) == (0, "finished")
    else:  # what made the fix necessary: rich exits from inside the log call (if this changes, so may the fix)
        assert code == 1 and not done.exists()
